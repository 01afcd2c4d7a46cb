package client_test

import (
	"context"
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
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
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
	const n = 600
	var last string
	for i := range n {
		if last, _ = tx.c.Queue(rx.user, fmt.Sprint("m", i)); last == "" {
			t.Fatal("queue failed")
		}
	}
	if err := tx.c.Flush(hangGuard(t), last); err != nil {
		t.Fatal(err)
	}
	// Processing 600 deliveries (MLS decryption and an fsync'd store
	// write each) takes several seconds on this machine class, while one
	// delivery takes milliseconds: a 1 s limit on total time fails, a 1 s
	// limit on progress does not.
	defer client.SetConnectWait(time.Second)()
	start := time.Now()
	rx.c = open()
	got := 0
	err := rx.c.Receive(hangGuard(t), 500*time.Millisecond, func(m store.Message) error {
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
	t.Logf("caught up %d messages in %v with a 1 s progress limit", n, time.Since(start))
}

// hangGuard is a context that only stops a hung test; it is no time limit.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
