package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRecorderCountsDuplicatesAndForeign(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	r := newRecorder("run1", func() time.Time { return now })
	now = t0.Add(5 * time.Millisecond)
	r.note(benchText("run1", 3, 1, t0, 200))
	r.note(benchText("run1", 3, 1, t0, 200)) // again: a duplicate
	r.note(benchText("run1", 3, 2, t0, 10))
	r.note(benchText("other", 3, 3, t0, 200)) // another run's
	r.note("hello")
	r.note(warmText("run1", 3))
	select {
	case <-r.warmSeen(3):
	default:
		t.Error("warm-up from sender 3 not noticed")
	}
	if d, dup := r.counts(); d != 2 || dup != 1 || r.foreign != 2 {
		t.Errorf("delivered %d dups %d foreign %d, want 2 1 2", d, dup, r.foreign)
	}
	if !r.has(key{3, 1}) || !r.has(key{3, 2}) || r.has(key{3, 3}) {
		t.Error("has() disagrees with what was noted")
	}
	if r.lat[0] != 5*time.Millisecond {
		t.Errorf("latency %v, want 5ms", r.lat[0])
	}
	if n := len(benchText("run1", 3, 1, t0, 200)); n != 200 {
		t.Errorf("bench text is %d bytes, want 200", n)
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(ds)
	want := [7]float64{1000, 500, 900, 990, 999, 1000, 500.5}
	if got := [7]float64{float64(l.Count), l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean}; got != want {
		t.Errorf("got %+v\nwant %+v", l, want)
	}
	if e := Summarize(nil); e.Count != 0 || e.Max != 0 {
		t.Errorf("empty: %+v", e)
	}
}

// FuzzRecorderNote: received texts come from the network (decrypted); any
// text is counted as delivered, duplicate or foreign, never a panic.
func FuzzRecorderNote(f *testing.F) {
	f.Add(benchText("run1", 1, 2, time.Unix(5, 0), 60))
	f.Add(warmText("run1", 7))
	f.Add("hb1 run1 -1 18446744073709551615 -9223372036854775808")
	f.Add("hbw run1 x")
	f.Fuzz(func(t *testing.T, text string) {
		r := newRecorder("run1", time.Now)
		r.note(text)
		r.note(text)
		d, dup := r.counts()
		if d+dup+r.foreign > 2 || (d == 1 && dup != 1) {
			t.Errorf("%q noted twice: delivered %d dups %d foreign %d", text, d, dup, r.foreign)
		}
	})
}

// TestAwaitDeliveriesMissing: the wait for deliveries reports how many
// acknowledged messages had not arrived when it gave up, and 0 once all
// did (the pairs report then notes that they count as lost).
func TestAwaitDeliveriesMissing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rec := newRecorder("run1", func() time.Time { return t0 })
	s := newSender(3, nil, "", "run1", 200, func() time.Time { return t0 })
	s.sched = []time.Time{t0, t0, t0}
	s.acked = 3
	rec.note(benchText("run1", 3, 1, t0, 200))
	f := &Fleet{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if n := f.awaitDeliveries(ctx, []*sender{s}, rec); n != 2 {
		t.Errorf("missing %d after the wait ended, want 2", n)
	}
	rec.note(benchText("run1", 3, 2, t0, 200))
	rec.note(benchText("run1", 3, 3, t0, 200))
	if n := f.awaitDeliveries(context.Background(), []*sender{s}, rec); n != 0 {
		t.Errorf("missing %d with every message delivered, want 0", n)
	}
	if note := drainNote(2, "30s"); !strings.Contains(note, "2 acknowledged messages not delivered") {
		t.Errorf("note %q", note)
	}
}
