package loadgen

import (
	"testing"
	"time"
)

// TestFinishGroupCountsPerMember: loss and duplicates are counted per
// member, the sender's own device expects nothing, and the fan-out latency
// of a message is the latest member's.
func TestFinishGroupCountsPerMember(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	clock := func() time.Time { return now }
	f := &Fleet{cfg: Config{Now: clock}}
	devs := []*Device{{Index: 0}, {Index: 1}, {Index: 2}}
	s := newSender(0, devs[0], "conv", "run", 50, clock)
	s.sched, s.ids, s.acked = []time.Time{t0, t0}, []string{"a", "b"}, 2
	recs := []*recorder{newRecorder("run", clock), newRecorder("run", clock), newRecorder("run", clock)}
	now = t0.Add(10 * time.Millisecond)
	recs[1].note(benchText("run", 0, 1, t0, 50))
	recs[1].note(benchText("run", 0, 2, t0, 50))
	recs[1].note(benchText("run", 0, 2, t0, 50)) // duplicate
	now = t0.Add(30 * time.Millisecond)
	recs[2].note(benchText("run", 0, 1, t0, 50)) // seq 2 never reaches member 2
	var r Report
	f.finishGroup(&r, []*sender{s}, devs, recs, nil, watchProc(0, clock), t0, now)
	if r.Sent != 2 || r.Acked != 2 || r.Delivered != 3 || r.Duplicates != 1 || r.Lost != 1 {
		t.Errorf("sent %d acked %d delivered %d dups %d lost %d, want 2 2 3 1 1", r.Sent, r.Acked, r.Delivered, r.Duplicates, r.Lost)
	}
	if r.FanOut == nil || r.FanOut.Count != 2 || r.FanOut.Max != 30 || r.FanOut.P50 != 10 {
		t.Errorf("fan-out %+v, want 2 messages: 30ms (seq 1, member 2) and 10ms (seq 2)", r.FanOut)
	}
	if r.Latency.Count != 3 {
		t.Errorf("%d latencies, want 3", r.Latency.Count)
	}
}

// TestFinishGroupFromServer: with the server's acceptance time on each
// delivery (wire mode), the report has the latencies from it: per
// delivery, and per message to its last member.
func TestFinishGroupFromServer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	clock := func() time.Time { return now }
	f := &Fleet{cfg: Config{Now: clock}}
	devs := []*Device{{Index: 0}, {Index: 1}, {Index: 2}}
	s := newSender(0, devs[0], "conv", "run", 50, clock)
	s.sched, s.ids, s.acked = []time.Time{t0, t0}, []string{"a", "b"}, 2
	recs := []*recorder{newRecorder("run", clock), newRecorder("run", clock), newRecorder("run", clock)}
	acc := t0.Add(4 * time.Millisecond).UnixMilli() // both accepted 4 ms after their due time
	now = t0.Add(10 * time.Millisecond)
	recs[1].noteID(wireID("run", 0, 1, t0), acc)
	recs[2].noteID(wireID("run", 0, 2, t0), acc)
	now = t0.Add(20 * time.Millisecond)
	recs[2].noteID(wireID("run", 0, 1, t0), acc)
	recs[1].noteID(wireID("run", 0, 2, t0), acc)
	recs[1].noteID(wireID("run", 0, 2, t0), acc) // a duplicate adds no latency
	var r Report
	f.finishGroup(&r, []*sender{s}, devs, recs, nil, watchProc(0, clock), t0, now)
	if r.Lost != 0 || r.Duplicates != 1 || r.Delivered != 4 {
		t.Fatalf("lost %d dups %d delivered %d, want 0 1 4", r.Lost, r.Duplicates, r.Delivered)
	}
	if l := r.ServerLatency; l == nil || l.Count != 4 || l.P50 != 6 || l.Max != 16 {
		t.Errorf("server latency %+v, want 4 deliveries of 6 and 16 ms", l)
	}
	if l := r.FanOutServer; l == nil || l.Count != 2 || l.P50 != 16 || l.Max != 16 {
		t.Errorf("fan-out from the server %+v, want 2 messages of 16 ms", l)
	}
	if r.FanOut == nil || r.FanOut.Max != 20 {
		t.Errorf("fan-out from the due time %+v, want 20 ms", r.FanOut)
	}
}
