package main

import (
	"testing"
	"time"

	"hearth/homeserver/admin"
)

// TestPromStage: a stage histogram in Prometheus form counts, at each
// power-of-two bound, exactly the values below it.
func TestPromStage(t *testing.T) {
	var l admin.LatencyRecorder
	for _, d := range []time.Duration{10 * time.Microsecond, 100 * time.Microsecond, 127 * time.Microsecond, 128 * time.Microsecond, time.Second, time.Minute} {
		l.Observe(d)
	}
	st := promStage(l.Snapshot())
	if st.Count != 6 || st.Sum < 61 || st.Sum > 61.01 {
		t.Errorf("count %d sum %v, want 6 and ≈ 61 s", st.Count, st.Sum)
	}
	for bound, want := range map[float64]uint64{16e-6: 1, 128e-6: 3, 256e-6: 4, 1.048576: 5, 33.554432: 5} {
		if got := st.Buckets[bound]; got != want {
			t.Errorf("values below %v s: %d, want %d", bound, got, want)
		}
	}
	if len(st.Buckets) != 22 {
		t.Errorf("%d bounds, want 22 (16 µs … 32 s)", len(st.Buckets))
	}
}
