package client_test

import (
	"fmt"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// TestReceiveBacklogOutlastsConnectWait: catching up a backlog that takes
// longer than the connect limit is not a failure as long as entries keep
// flowing (it used to fail with "not connected to the server within").
func TestReceiveBacklogOutlastsConnectWait(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	tx := groupUsers(t, ts, "tx")[0]
	// rx logs in, then goes offline while the backlog builds up.
	profile := t.TempDir()
	open := func() *client.Client {
		c, err := client.Open(client.Config{Profile: profile, Dial: ts.Dial(), Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rx := &dev{t: t, c: open(), user: ts.AddUser(t, "rx", groupPW)}
	rx.login(groupPW)
	rx.drain()
	rx.c.Close()
	const n = 400
	var last string
	for i := range n {
		if last, _ = tx.c.Queue(rx.user, fmt.Sprint("m", i)); last == "" {
			t.Fatal("queue failed")
		}
	}
	if err := tx.c.Flush(ctx30(t), last); err != nil {
		t.Fatal(err)
	}
	// Processing 400 deliveries (MLS decryption and an fsync'd store
	// write each) takes far longer than 30 ms on any machine.
	defer client.SetConnectWait(30 * time.Millisecond)()
	rx.c = open()
	got := 0
	err := rx.c.Receive(ctx30(t), 500*time.Millisecond, func(m store.Message) error {
		if m.Event == "" {
			if m.Text != fmt.Sprint("m", got) {
				return fmt.Errorf("message %d is %q", got, m.Text)
			}
			got++
		}
		return nil
	})
	if err != nil || got != n {
		t.Fatalf("received %d of %d in order: %v", got, n, err)
	}
}
