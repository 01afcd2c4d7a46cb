package client_test

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// TestReconnectBacksOffWhenProcessingFails: a delivery whose processing
// fails for a passing reason (a member's device list cannot be fetched:
// its server was unreachable a moment ago) ends the connection, and the
// session reconnects to process it again. Each such connection is up, so
// the delay used to start again from the shortest every time: about 13
// reconnects a second, for as long as the other server stayed down. The
// delays now keep growing (default backoff: 100 ms doubling to 10 s).
func TestReconnectBacksOffWhenProcessingFails(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	ann, ben, cat := us[0], us[1], us[2]
	ben2 := newDev(t, ts, ben.user)
	ben2.link(groupPW, ben)
	gid, err := ann.c.Groups().Create(ctx30(t), "backoff", []string{ben.user, cat.user})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dev{ben, ben2, cat} {
		d.drain()
	}
	if err := ann.c.Close(); err != nil {
		t.Fatal(err)
	}
	ben.c.PublishListWithout(t, deviceID(ben2))
	cat.send(gid, "from cat") // a commit (removing ben2) and a message, for ann to read

	// ann comes back with the default backoff, her server marked
	// unreachable for list fetches: the commit cannot be checked yet.
	c, err := client.Open(client.Config{Profile: ann.profile, Dial: ts.Dial(), Groups: mlsgroup.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lost := &logCounter{n: map[string]int{}}
	c.SetLoggerForTest(slog.New(lost))
	err = c.Store().Update(func(tx *store.Tx) error {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(time.Now().Add(time.Hour).UnixMilli()))
		return tx.PutMeta("unreachable/a.example", b[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Receive(ctx30(t), 3*time.Second, func(store.Message) error { return nil }) // cannot finish: the commit waits
	if n := lost.count("connection lost"); n < 2 || n > 12 {
		t.Fatalf("%d reconnects in 3 s, want 2 to 12 (growing delays)", n)
	}
}
