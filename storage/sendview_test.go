package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// oneBatch runs fns as requests of one writer transaction (behind a
// request that holds the writer until all are queued) and returns their
// errors.
func oneBatch(t *testing.T, db *DB, fns ...func(*Tx) error) []error {
	t.Helper()
	ctx := context.Background()
	release := make(chan struct{})
	blocker := db.Submit(ctx, func(*Tx) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	b0, _ := db.WriteStats()
	waits := make([]func() error, len(fns))
	for i, fn := range fns {
		waits[i] = db.Submit(ctx, fn)
	}
	close(release)
	if err := blocker(); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(fns))
	for i, w := range waits {
		errs[i] = w()
	}
	if b, _ := db.WriteStats(); b-b0 != 2 {
		t.Fatalf("%d transactions, want the blocker's and one for the %d requests", b-b0, len(fns))
	}
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// recipients is v's recipients' device ids, sorted.
func recipients(v *SendView) []string {
	var ds []string
	for _, h := range v.Recipients {
		ds = append(ds, h.DeviceID)
	}
	slices.Sort(ds)
	return ds
}

// TestConversationForSendCached: the writer's send views answer as the
// statement does (TestConversationForSend's cases, each asked twice: read
// into the views, then answered from them).
func TestConversationForSendCached(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 3)
	mustWrite(t, db, func(tx *Tx) error {
		if err := tx.AddMember("c@x", Member{Address: "r@other.example/D1"}, 4); err != nil {
			return err
		}
		_, err := appendMsg(tx, "c@x", ids[2], 1, "x")
		return err
	})
	type answer struct {
		conv   Conversation
		member bool
		remote []Member
		recips []Head
		added  uint64
	}
	ask := func(tx *Tx, sender, dev string, remote bool) (answer, error) {
		v, err := tx.ConversationForSend("c@x", sender, dev, remote)
		if err != nil {
			return answer{}, err
		}
		slices.SortFunc(v.Recipients, func(a, b Head) int { return strings.Compare(a.DeviceID, b.DeviceID) })
		return answer{*v.Conv, v.Member, v.Remote, v.Recipients, v.LastAdded}, nil
	}
	cases := []struct {
		sender, dev string
		remote      bool
	}{{"u@x/" + ids[0], ids[0], true}, {"u@x/" + ids[1], ids[1], false}, {"u@x/NOPE", "NOPE", true}, {"r@other.example/D1", "", true}}
	var want []answer
	if err := db.Read(context.Background(), func(tx *Tx) error {
		for _, c := range cases {
			a, err := ask(tx, c.sender, c.dev, c.remote)
			if err != nil {
				return err
			}
			want = append(want, a)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h0, f0 := db.SendViewStats()
	mustWrite(t, db, func(tx *Tx) error {
		for range 2 {
			for i, c := range cases {
				a, err := ask(tx, c.sender, c.dev, c.remote)
				if err != nil {
					return err
				}
				if fmt.Sprint(a) != fmt.Sprint(want[i]) {
					return fmt.Errorf("%s: from the views %+v, from the statement %+v", c.sender, a, want[i])
				}
			}
		}
		if _, err := tx.ConversationForSend("none@x", "u@x/"+ids[0], ids[0], true); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("no conversation: %v", err)
		}
		return nil
	})
	if h, f := db.SendViewStats(); h-h0 != 7 || f-f0 != 1 {
		t.Fatalf("%d answered from the views, %d read into them; want 7 and 1", h-h0, f-f0)
	}
	if want[0].added != 4 || !want[0].member || want[2].member || len(want[0].remote) != 1 || len(want[1].remote) != 0 {
		t.Fatalf("statement's answers %+v", want)
	}
}

// TestSendViewRosterInBatch: in one writer transaction, a roster change
// between Sends of a conversation whose view the writer holds is seen by
// the next Send: a removed device is no member and gets nothing, an added
// device gets the next message and its epoch is the conversation's latest
// add, a revoked device (mailbox gone) is no recipient.
func TestSendViewRosterInBatch(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 3)
	extra := fixture(t, db, "e", 1) // a device of this server to add
	send := func(dev, id string) func(*Tx) error {
		return func(tx *Tx) error { return sendLikeHub(tx, "c@x", dev, id, []byte(id), 1) }
	}
	check := func(dev string, member bool, recips []string, added uint64) func(*Tx) error {
		return func(tx *Tx) error {
			v, err := tx.ConversationForSend("c@x", "u@x/"+dev, dev, false)
			if err != nil {
				return err
			}
			if v.Member != member || !slices.Equal(recipients(v), recips) || v.LastAdded != added {
				return fmt.Errorf("%s: member %v recipients %v added %d; want %v %v %d", dev, v.Member, recipients(v), v.LastAdded, member, recips, added)
			}
			return nil
		}
	}
	h0, _ := db.SendViewStats()
	noErrors(t, oneBatch(t, db,
		send(ids[0], "m1"),
		check(ids[1], true, []string{ids[0], ids[2]}, 0),
		func(tx *Tx) error { return tx.RemoveMember("c@x", "u@x/"+ids[1]) },
		check(ids[1], false, []string{ids[0], ids[2]}, 0),
		check(ids[0], true, []string{ids[2]}, 0),
		send(ids[0], "m2"),
		func(tx *Tx) error {
			return tx.AddMember("c@x", Member{Address: "u@x/" + extra[0], DeviceID: extra[0]}, 5)
		},
		check(ids[0], true, []string{ids[2], extra[0]}, 5),
		send(ids[0], "m3"),
		func(tx *Tx) error { return tx.RevokeDevice(ids[2], 1) },
		check(ids[0], true, []string{extra[0]}, 5),
		send(ids[0], "m4"),
	))
	if h, _ := db.SendViewStats(); h-h0 < 4 {
		t.Fatalf("%d answers from the views: the test did not use them", h-h0)
	}
	db.Read(context.Background(), func(tx *Tx) error {
		for dev, want := range map[string]string{ids[1]: "m1", extra[0]: "m3 m4"} {
			es, err := tx.Entries(dev, 0, 10)
			var got []string
			for _, e := range es {
				got = append(got, e.MessageID)
			}
			if err != nil || strings.Join(got, " ") != want {
				t.Errorf("%s got %v (%v), want %s", dev, got, err, want)
			}
		}
		return nil
	})
}

// TestSendViewHeadsMovedElsewhere: a head moved outside FanOutTo (a
// mailbox entry appended to the device directly, here another
// conversation's) is seen by the next Send from the views, in the same
// transaction and in the next.
func TestSendViewHeadsMovedElsewhere(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	send := func(id string) func(*Tx) error {
		return func(tx *Tx) error { return sendLikeHub(tx, "c@x", ids[0], id, []byte(id), 1) }
	}
	appendOther := func(tx *Tx) error {
		if err := tx.AppendLog(&LogEntry{ConvID: "c@x", Seq: 100, Sender: "u@x/" + ids[0], MessageID: "x", Kind: 1, Payload: []byte("x"), CreatedMs: 1}); err != nil {
			return err
		}
		_, err := tx.AppendMailbox(ids[1], "c@x", 100, false, 1)
		return err
	}
	noErrors(t, oneBatch(t, db, send("m1"), appendOther, send("m2")))
	noErrors(t, oneBatch(t, db, send("m3")))
	db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		var got []string
		for _, e := range es {
			got = append(got, fmt.Sprint(e.Seq, e.MessageID))
		}
		if err != nil || strings.Join(got, " ") != "1m1 2x 3m2 4m3" {
			t.Errorf("entries %v (%v)", got, err)
		}
		return nil
	})
}

// TestSendViewRollback: what a request learnt and then rolled back
// (its own savepoint, or a nested Tx.Savepoint) is not in the views the
// next Send reads; a nested Savepoint that moved heads and was kept is.
func TestSendViewRollback(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	refused := errors.New("refused")
	addRemote := func(tx *Tx) error { return tx.AddMember("c@x", Member{Address: "r@other.example/D1"}, 7) }
	check := func(tx *Tx) error {
		v, err := tx.ConversationForSend("c@x", "u@x/"+ids[0], ids[0], true)
		if err != nil {
			return err
		}
		if v.LastAdded != 0 || len(v.Remote) != 0 {
			return fmt.Errorf("views kept a rolled back add: added %d, remote %v", v.LastAdded, v.Remote)
		}
		return nil
	}
	send := func(id string) func(*Tx) error {
		return func(tx *Tx) error { return sendLikeHub(tx, "c@x", ids[0], id, []byte(id), 1) }
	}
	errs := oneBatch(t, db,
		send("m1"),
		func(tx *Tx) error {
			if err := addRemote(tx); err != nil {
				return err
			}
			if _, err := tx.ConversationForSend("c@x", "u@x/"+ids[0], ids[0], true); err != nil {
				return err
			}
			if err := send("m2")(tx); err != nil {
				return err
			}
			return refused
		},
		check,
		send("m3"),
		func(tx *Tx) error {
			if err := tx.Savepoint(func() error {
				if err := addRemote(tx); err != nil {
					return err
				}
				return refused
			}); !errors.Is(err, refused) {
				return fmt.Errorf("nested savepoint: %v", err)
			}
			return check(tx)
		},
		// A nested Savepoint that fans out and is kept: the heads it
		// moved are those the next Send must start from.
		func(tx *Tx) error {
			v, err := tx.ConversationForSend("c@x", "u@x/"+ids[0], ids[0], false)
			if err != nil {
				return err
			}
			seq := v.Conv.LastSeq + 1
			if err := tx.Savepoint(func() error {
				if err := tx.AppendLog(&LogEntry{ConvID: "c@x", Seq: seq, Sender: "u@x/" + ids[0], MessageID: "n", Kind: 1, Payload: []byte("n"), CreatedMs: 1, Refs: 1}); err != nil {
					return err
				}
				_, err := tx.FanOutTo("c@x", seq, ids[0], v.Recipients, 1)
				return err
			}); err != nil {
				return err
			}
			return tx.AdvanceConversation("c@x", v.Conv.Epoch, nil, seq, false)
		},
		send("m4"),
	)
	for i, err := range errs {
		if i == 1 {
			if !errors.Is(err, refused) {
				t.Fatalf("request 1: %v", err)
			}
		} else if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		var got []string
		for _, e := range es {
			got = append(got, fmt.Sprint(e.Seq, e.MessageID, e.ConvSeq))
		}
		if err != nil || strings.Join(got, " ") != "1m11 2m32 3n3 4m44" {
			t.Errorf("entries %v (%v)", got, err)
		}
		return nil
	})
}

// TestSendViewRestart: nothing the views held is needed after a restart:
// the dedup records and the heads are in the database, and the next Sends
// continue from them.
func TestSendViewRestart(t *testing.T) {
	db, path := openTest(t)
	ids := fixture(t, db, "c", 2)
	for _, id := range []string{"m1", "m2"} {
		mustWrite(t, db, func(tx *Tx) error { return sendLikeHub(tx, "c@x", ids[0], id, []byte(id), 1) })
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustWrite(t, db, func(tx *Tx) error {
		if ok, err := tx.ClaimSendRecord(&SendRecord{Sender: "u@x/" + ids[0], MessageID: "m2", ConvID: "c@x", ConvSeq: 3, CreatedMs: 2}); err != nil || ok {
			return fmt.Errorf("m2 claimed again after the restart: %v %v", ok, err)
		}
		return sendLikeHub(tx, "c@x", ids[0], "m3", []byte("m3"), 2)
	})
	mustWrite(t, db, func(tx *Tx) error { return sendLikeHub(tx, "c@x", ids[0], "m4", []byte("m4"), 2) })
	db.Read(context.Background(), func(tx *Tx) error {
		es, err := tx.Entries(ids[1], 0, 10)
		var got []string
		for _, e := range es {
			got = append(got, fmt.Sprint(e.Seq, e.MessageID, e.ConvSeq))
		}
		if err != nil || strings.Join(got, " ") != "1m11 2m22 3m33 4m44" {
			t.Errorf("entries %v (%v)", got, err)
		}
		return nil
	})
}

// TestSendViewLargeGroup: in a group of 100 devices (mailbox rows inserted
// from the roster, heads moved by RETURNING) Sends from several members
// in one transaction are answered from the views after the first, and
// every member gets each message once, in order, but its own.
func TestSendViewLargeGroup(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "g", 100)
	senders := []string{ids[0], ids[50], ids[0], ids[99]}
	var fns []func(*Tx) error
	for i, dev := range senders {
		fns = append(fns, func(tx *Tx) error { return sendLikeHub(tx, "g@x", dev, fmt.Sprint("m", i), []byte("p"), 1) })
	}
	h0, f0 := db.SendViewStats()
	noErrors(t, oneBatch(t, db, fns...))
	if h, f := db.SendViewStats(); h-h0 != 3 || f-f0 != 1 {
		t.Fatalf("%d Sends answered from the views, %d reads into them; want 3 and 1", h-h0, f-f0)
	}
	db.Read(context.Background(), func(tx *Tx) error {
		for _, dev := range ids {
			es, err := tx.Entries(dev, 0, 10)
			var got []string
			for _, e := range es {
				got = append(got, fmt.Sprint(e.Seq, e.MessageID))
			}
			var want []string
			for i, s := range senders {
				if s != dev {
					want = append(want, fmt.Sprint(len(want)+1, "m", i))
				}
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s: %v (%v), want %v", dev, got, err, want)
			}
		}
		return nil
	})
}
