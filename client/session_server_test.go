package client

import (
	"errors"
	"testing"
	"time"

	"hearth/client/store"
)

// TestSessionReconnectsAndRefreshes runs the session against the real
// homeserver: a dropped stream is re-established, and an access token the
// server considers expired is refreshed (and the new pair saved) without
// the caller noticing.
func TestSessionReconnectsAndRefreshes(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c := ts.client(t)
	login(t, ts, c, alice, "correct horse battery")
	ctx := testCtx(t)
	if _, err := c.Devices(ctx); err != nil {
		t.Fatal(err)
	}

	ts.dropAll()
	if devs, err := c.Devices(ctx); err != nil || len(devs) != 1 {
		t.Fatalf("after a dropped stream: %v, %v", devs, err)
	}

	before, _ := c.Account()
	ts.skew.Store(int64(2 * time.Hour)) // every access token is now expired for the server
	ts.dropAll()
	if _, err := c.Devices(ctx); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}
	after, _ := c.Account()
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken {
		t.Fatal("tokens were not refreshed and saved")
	}
	// The saved pair survives a restart of the client.
	c.Close()
	c2, err := Open(Config{Profile: c.cfg.Profile, Dial: ts.dial, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Devices(ctx); err != nil {
		t.Fatalf("reopened profile: %v", err)
	}
	var a store.Account
	c2.st.View(func(tx *store.Tx) (err error) { a, err = tx.Account(); return })
	if a.RefreshToken != after.RefreshToken && a.RefreshToken == before.RefreshToken {
		t.Fatal("old refresh token back in the store")
	}
}

func TestMessagingWithoutMLSRefuses(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c := ts.client(t)
	login(t, ts, c, alice, "correct horse battery")
	if _, err := c.Queue("bob@a.example", "hello"); !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("Queue without MLS = %v, want ErrNoE2EE", err)
	}
	if err := c.Flush(testCtx(t), ""); !errors.Is(err, ErrNoE2EE) {
		t.Fatalf("Flush without MLS = %v", err)
	}
	var items []store.OutboxItem
	c.st.View(func(tx *store.Tx) (err error) { items, err = tx.Outbox(); return })
	if len(items) != 0 {
		t.Fatalf("outbox holds %d items", len(items))
	}
}

// TestConcurrentRunsRefreshOnce: two runs on one profile find the access
// token expired at the same moment; the refresh token is rotated once (a
// second use would be taken for theft and revoke the device).
func TestConcurrentRunsRefreshOnce(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.addUser(t, "alice", "correct horse battery")
	c1 := ts.client(t)
	login(t, ts, c1, alice, "correct horse battery")
	c2, err := Open(Config{Profile: c1.cfg.Profile, Dial: ts.dial, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx := testCtx(t)
	ts.skew.Store(int64(2 * time.Hour))
	errs := make(chan error, 2)
	for _, c := range []*Client{c1, c2} {
		go func() {
			_, err := c.Devices(ctx)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("run after expiry: %v", err)
		}
	}
	// Both keep working on new streams with the one rotated pair.
	ts.dropAll()
	for _, c := range []*Client{c1, c2} {
		if _, err := c.Devices(ctx); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
}
