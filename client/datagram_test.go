package client_test

import (
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
)

// TestSignalsOverDatagrams: bob's device is connected over native QUIC
// (auto mode), so typing and presence reach it as datagrams; over the WebSocket
// fallback they come on the stream. Either way OnSignal gets them.
func TestSignalsOverDatagrams(t *testing.T) {
	for _, tc := range []struct {
		name      string
		websocket bool
	}{{"quic", false}, {"websocket", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := client.NewTestServer(t, "a.example")
			const pw = "correct horse battery"
			A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
			a1 := newDev(t, ts, A)
			c, err := client.Open(client.Config{Profile: t.TempDir(), Dial: ts.DialQUIC(t, tc.websocket), Groups: mlsgroup.New(),
				MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			b1 := &dev{t: t, c: c, user: B}
			a1.login(pw)
			b1.login(pw)
			a1.send(B, "hello")
			b1.recv(A + ":hello") // bob's session stays up after this
			got := make(chan client.Signal, 16)
			b1.c.OnSignal(func(s client.Signal) { got <- s })
			before := ts.DatagramPushes()
			if err := a1.c.Typing(ctx30(t), B, true); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(20 * time.Second)
			for {
				select {
				case s := <-got:
					if s.Event != "typing" {
						continue // alice's presence
					}
					if s.User != A || !s.Typing {
						t.Fatalf("signal %+v, want alice typing", s)
					}
				case <-deadline:
					t.Fatal("bob's device got no typing signal")
				}
				break
			}
			if sent := ts.DatagramPushes() - before; (sent > 0) == tc.websocket {
				t.Fatalf("%s: %d signals sent as datagrams", tc.name, sent)
			}
		})
	}
}
