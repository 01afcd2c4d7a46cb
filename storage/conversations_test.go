package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestConversationForSend: one statement gives the conversation, the
// sender's membership, the devices here that get a message with their
// heads and the members on other servers.
func TestConversationForSend(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	remote := []string{"r@other.example/D1", "s@third.example/D2"}
	mustWrite(t, db, func(tx *Tx) error {
		for _, a := range remote {
			if err := tx.AddMember("c@x", Member{Address: a}, 1); err != nil {
				return err
			}
		}
		return nil
	})
	mustWrite(t, db, func(tx *Tx) error { _, err := appendMsg(tx, "c@x", ids[1], 1, "x"); return err }) // ids[0]'s head: 1
	err := db.Read(context.Background(), func(tx *Tx) error {
		for _, tc := range []struct {
			sender, device string
			remote         bool
			member         bool
			others         int
			recips         []Head
		}{
			{"u@x/" + ids[0], ids[0], true, true, 2, []Head{{ids[1], 0}}},
			{"u@x/" + ids[1], ids[1], false, true, 0, []Head{{ids[0], 1}}},
			{"u@x/NOPE", "NOPE", true, false, 2, []Head{{ids[0], 1}, {ids[1], 0}}},
			{"u@x/NOPE", "NOPE", false, false, 0, []Head{{ids[0], 1}, {ids[1], 0}}},
			{remote[0], "", true, true, 2, []Head{{ids[0], 1}, {ids[1], 0}}},
		} {
			v, err := tx.ConversationForSend("c@x", tc.sender, tc.device, tc.remote)
			if err != nil {
				return err
			}
			c := v.Conv
			slices.SortFunc(v.Recipients, func(a, b Head) int { return strings.Compare(a.DeviceID, b.DeviceID) })
			if c.ID != "c@x" || c.Creator != "u@x/"+ids[0] || c.LastSeq != 1 || v.Member != tc.member || len(v.Remote) != tc.others || !slices.Equal(v.Recipients, tc.recips) {
				return fmt.Errorf("%s (remote %v): %+v member %v others %v recipients %v", tc.sender, tc.remote, c, v.Member, v.Remote, v.Recipients)
			}
			for i, o := range v.Remote {
				if o.Address != remote[i] && o.Address != remote[1-i] || o.DeviceID != "" {
					return fmt.Errorf("remote member %+v", o)
				}
			}
		}
		if _, err := tx.ConversationForSend("none@x", "u@x/"+ids[0], ids[0], true); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("no conversation: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFanOutTo: the recipients ConversationForSend reads get the entry
// at their next sequence, for a small group (heads moved by device list),
// a middle one (by the roster, rows pending) and a large one (rows
// inserted from the roster at once); a recipient list that does not match
// the roster is an error, not a silent partial fan-out.
func TestFanOutTo(t *testing.T) {
	db, _ := openTest(t)
	for _, n := range []int{3, 12, 100} {
		conv := fmt.Sprint("g", n)
		ids := fixture(t, db, conv, n)
		for seq := uint64(1); seq <= 2; seq++ {
			mustWrite(t, db, func(tx *Tx) error {
				if err := tx.AppendLog(&LogEntry{ConvID: conv + "@x", Seq: seq, Sender: "u@x/" + ids[0], MessageID: fmt.Sprint("m", seq), Kind: 1, Payload: []byte("p"), CreatedMs: 1}); err != nil {
					return err
				}
				v, err := tx.ConversationForSend(conv+"@x", "u@x/"+ids[0], ids[0], false)
				if err != nil {
					return err
				}
				heads, err := tx.FanOutTo(conv+"@x", seq, ids[0], v.Recipients, 1)
				if err != nil {
					return err
				}
				if len(heads) != n-1 {
					return fmt.Errorf("%d heads for %d recipients", len(heads), n-1)
				}
				for _, h := range heads {
					if h.Seq != seq {
						return fmt.Errorf("head %+v, want seq %d", h, seq)
					}
				}
				return nil
			})
		}
		db.Read(context.Background(), func(tx *Tx) error {
			for _, id := range ids[1:] {
				es, err := tx.Entries(id, 0, 10)
				if err != nil || len(es) != 2 || es[0].Seq != 1 || es[1].Seq != 2 || es[1].ConvSeq != 2 {
					t.Fatalf("group of %d, device %s: %+v (%v)", n, id, es, err)
				}
			}
			if es, _ := tx.Entries(ids[0], 0, 10); len(es) != 0 {
				t.Fatalf("the sender got %d entries", len(es))
			}
			return nil
		})
	}
	ids := fixture(t, db, "h", 3)
	err := db.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.FanOutTo("h@x", 1, ids[0], []Head{{ids[1], 0}, {"GONE", 0}}, 1)
		return err
	})
	if err == nil {
		t.Fatal("a recipient without a mailbox was fanned out to silently")
	}
}
