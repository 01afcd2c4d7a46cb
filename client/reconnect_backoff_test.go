package client_test

import (
	"encoding/binary"
	"log/slog"
	"slices"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// TestUnfetchedListParksWithoutReconnecting: a commit whose check needs a
// device list that cannot be fetched (its server unreachable a moment
// ago) used to fail the delivery, which ended the connection: the session
// reconnected to process it again (369 times in 3 s before the reconnect
// delays grew, client/session.TestReconnectBacksOffWhenHandlerFails), and
// the whole mailbox waited. The conversation is now parked instead: the
// connection stays up, and the retry applies the commit and the message
// behind it.
func TestUnfetchedListParksWithoutReconnecting(t *testing.T) {
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
	var got []string
	err = c.Receive(ctx30(t), 3*time.Second, func(m store.Message) error { got = append(got, m.Text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n := lost.count("connection lost"); n != 0 {
		t.Fatalf("%d reconnects, want none", n)
	}
	if n := lost.count("a delivery cannot be processed yet"); n != 1 {
		t.Fatalf("parked %d times, want once", n)
	}
	if !slices.Equal(got, []string{"from cat"}) {
		t.Fatalf("ann got %q, want cat's message once", got)
	}
}
