package loadgen

import (
	"context"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestRecorderNoteID: wire-mode arrivals are matched by message id alone:
// sender, sequence and due time come from the id; other runs' ids and
// anything else are not recorded; a repeat is a duplicate and an earlier
// sequence after a later one is out of order.
func TestRecorderNoteID(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0.Add(3 * time.Millisecond)
	r := newRecorder("run1", func() time.Time { return now })
	for _, id := range []string{wireID("run1", 4, 2, t0), wireID("run1", 4, 1, t0), wireID("run1", 4, 2, t0)} {
		if !r.noteID(id, 0) {
			t.Fatalf("%q not taken for a bench id", id)
		}
	}
	for _, id := range []string{wireID("run2", 4, 3, t0), "0123456789abcdef0123456789abcdef", "hb1.run1.4.3", "hb1.run1.4.3.5.6", "hb1.run1.x.3.5", "hb1.run1.4.0.5"} {
		if r.noteID(id, 0) {
			t.Errorf("%q taken for a bench id of run1", id)
		}
	}
	if d, dup := r.counts(); d != 2 || dup != 1 || r.reordered != 1 || r.foreign != 0 {
		t.Errorf("delivered %d dups %d out of order %d foreign %d, want 2 1 1 0", d, dup, r.reordered, r.foreign)
	}
	if l := r.seen[key{4, 1}]; l != 3*time.Millisecond {
		t.Errorf("latency %v, want 3ms from the due time in the id", l)
	}
}

// TestWireHandler: the handler acknowledges every delivery once (re-pushed
// ones are skipped), records bench ids, hands the first other message of
// an armed sender to its capture, and counts the rest as foreign.
func TestWireHandler(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rec := newRecorder("run1", func() time.Time { return t0 })
	h := newWireHandler(rec, 10)
	got := h.arm("alice@a.example")
	app := wire.MessageKind_MESSAGE_KIND_APPLICATION
	ds := []*wire.Delivery{
		{Seq: 9, MessageId: wireID("run1", 1, 1, t0), Kind: app}, // before the resume point: skipped
		{Seq: 11, MessageId: "c1", Sender: "alice@a.example/D1", Kind: app, ConversationId: "c@a.example", Epoch: 3, Payload: []byte("ct")},
		{Seq: 12, MessageId: "c2", Sender: "alice@a.example/D1", Kind: app, Payload: []byte("ct2")}, // capture taken already
		{Seq: 13, MessageId: wireID("run1", 1, 1, t0), Kind: app},
		{Seq: 14, MessageId: wireID("run1", 1, 2, t0), Kind: wire.MessageKind_MESSAGE_KIND_COMMIT}, // not an application message
		{Seq: 13, MessageId: wireID("run1", 1, 1, t0), Kind: app},                                  // re-pushed
	}
	if err := h.HandleDeliveries(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	if seq, _ := h.ProcessedSeq(); seq != 14 {
		t.Errorf("processed %d, want 14", seq)
	}
	select {
	case c := <-got:
		if c.conv != "c@a.example" || c.epoch != 3 || string(c.payload) != "ct" {
			t.Errorf("captured %+v", c)
		}
	default:
		t.Fatal("nothing captured")
	}
	if d, dup := rec.counts(); d != 1 || dup != 0 || rec.foreign != 2 {
		t.Errorf("delivered %d dups %d foreign %d, want 1 0 2", d, dup, rec.foreign)
	}
}

// FuzzRecorderNoteID: message ids come from the network; any id is
// recorded at most once (then a duplicate) or not at all, never a panic.
func FuzzRecorderNoteID(f *testing.F) {
	f.Add(wireID("run1", 1, 2, time.Unix(5, 0)))
	f.Add("hb1.run1.-1.18446744073709551615.-9223372036854775808")
	f.Add("hb1.run1.1.1.1.1")
	f.Add("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, id string) {
		r := newRecorder("run1", time.Now)
		a, b := r.noteID(id, 0), r.noteID(id, 0)
		d, dup := r.counts()
		if a != b || (a && (d != 1 || dup != 1)) || (!a && d+dup != 0) {
			t.Errorf("%q noted twice: taken %v/%v delivered %d dups %d", id, a, b, d, dup)
		}
	})
}

// TestWireSetupHandler: while its group is set up, a wire member
// acknowledges Welcome, commits and other application messages without
// recording anything (counted by kind), hands over the one message
// expected (whether it came before or after expect), and records from
// then on; a bench id during the set-up is not recorded either.
func TestWireSetupHandler(t *testing.T) {
	t0 := time.Unix(1000, 0)
	app, commit, welcome := wire.MessageKind_MESSAGE_KIND_APPLICATION, wire.MessageKind_MESSAGE_KIND_COMMIT, wire.MessageKind_MESSAGE_KIND_WELCOME
	for _, early := range []bool{false, true} {
		rec := newRecorder("run1", func() time.Time { return t0.Add(7 * time.Millisecond) })
		h := newWireHandler(rec, 0)
		h.setup = newWireSetup()
		var got <-chan captured
		if !early {
			got = h.expect("cap")
		}
		ds := []*wire.Delivery{
			{Seq: 1, Kind: welcome, GroupInfo: []byte("gi")},
			{Seq: 2, Kind: commit},
			{Seq: 3, Kind: app, MessageId: "state", Payload: []byte("meta")},
			{Seq: 4, Kind: app, MessageId: wireID("run1", 0, 1, t0)}, // not yet measured
			{Seq: 5, Kind: app, MessageId: "cap", ConversationId: "g@a", Epoch: 5, Payload: []byte("ct")},
		}
		if err := h.HandleDeliveries(context.Background(), ds); err != nil {
			t.Fatal(err)
		}
		if early {
			got = h.expect("cap")
		}
		select {
		case c, ok := <-got:
			if !ok || c.conv != "g@a" || c.epoch != 5 || string(c.payload) != "ct" {
				t.Errorf("early %v: captured %+v (ok %v)", early, c, ok)
			}
		default:
			t.Fatalf("early %v: the expected message was not handed over", early)
		}
		if w, c, a, o := h.joinedCounts(); w != 1 || c != 1 || a != 3 || o != 0 {
			t.Errorf("early %v: set-up counts welcomes %d commits %d apps %d other %d, want 1 1 3 0", early, w, c, a, o)
		}
		if d, _ := rec.counts(); d != 0 || rec.foreign != 0 {
			t.Errorf("early %v: recorded %d deliveries, %d foreign during the set-up, want none", early, d, rec.foreign)
		}
		ds = []*wire.Delivery{
			{Seq: 6, Kind: app, MessageId: wireID("run1", 0, 1, t0), ServerTimeMs: t0.UnixMilli() + 2},
			{Seq: 7, Kind: commit},
		}
		if err := h.HandleDeliveries(context.Background(), ds); err != nil {
			t.Fatal(err)
		}
		if d, _ := rec.counts(); d != 1 || rec.foreign != 1 {
			t.Errorf("early %v: after the set-up delivered %d foreign %d, want 1 1", early, d, rec.foreign)
		}
		if l := rec.fromSrv[key{0, 1}]; l != 5*time.Millisecond || len(rec.srvLat) != 1 {
			t.Errorf("early %v: from the server's acceptance %v (%d values), want 5ms", early, l, len(rec.srvLat))
		}
	}
}
