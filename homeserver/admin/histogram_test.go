package admin

import (
	"encoding/json"
	"testing"
	"time"
)

// TestHistogramBuckets: the buckets tile the microseconds without gaps or
// overlaps, each at most 25 % wide, and every value falls in the bucket
// whose bounds hold it.
func TestHistogramBuckets(t *testing.T) {
	var next uint64
	for i := range histBuckets - 1 {
		lo, hi := BucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if lo >= histSub && float64(hi-lo+1) > 0.25*float64(lo) {
			t.Errorf("bucket %d [%d, %d] is wider than 25 %%", i, lo, hi)
		}
		for _, v := range []uint64{lo, (lo + hi) / 2, hi} {
			if b := bucketOf(v); b != i {
				t.Fatalf("value %d in bucket %d, want %d", v, b, i)
			}
		}
		next = hi + 1
	}
	if b := bucketOf(^uint64(0)); b != histBuckets-1 {
		t.Errorf("the largest value is in bucket %d, want the last (%d)", b, histBuckets-1)
	}
}

// TestHistogramQuantiles: quantiles of known values, an interval taken as
// the difference of two snapshots, and the JSON form round-trips.
func TestHistogramQuantiles(t *testing.T) {
	var l LatencyRecorder
	if h := l.Snapshot(); h.Count() != 0 || h.Quantile(0.99) != 0 || h.Mean() != 0 || len(h.Counts) != 0 {
		t.Fatalf("empty histogram: %+v", h)
	}
	for i := 1; i <= 1000; i++ { // 1 ms … 1,000 ms
		l.Observe(time.Duration(i) * time.Millisecond)
	}
	l.Observe(-time.Second) // counts as 0
	before := l.Snapshot()
	if n := before.Count(); n != 1001 {
		t.Fatalf("count %d, want 1001", n)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := before.Quantile(tc.q)
		if got < tc.want || float64(got) > 1.25*float64(tc.want) {
			t.Errorf("q%.2f = %v, want %v to 25 %% above", tc.q, got, tc.want)
		}
	}
	if got := before.Quantile(1); got != time.Second {
		t.Errorf("max %v, want exactly 1s (capped by the largest value)", got)
	}
	if m := before.Mean(); m < 499*time.Millisecond || m > 501*time.Millisecond {
		t.Errorf("mean %v, want about 500ms", m)
	}

	// An interval: 100 values of 20 µs after the first snapshot.
	for range 100 {
		l.Observe(20 * time.Microsecond)
	}
	after := l.Snapshot()
	iv := after.Sub(before)
	if n := iv.Count(); n != 100 {
		t.Fatalf("interval count %d, want 100", n)
	}
	if p, m := iv.Quantile(0.5), iv.Mean(); p < 20*time.Microsecond || p > 25*time.Microsecond || m != 20*time.Microsecond {
		t.Errorf("interval p50 %v mean %v, want 20µs", p, m)
	}
	if got := iv.Quantile(1); got > 25*time.Microsecond {
		t.Errorf("interval max %v: the values before the interval leak into it", got)
	}

	b, err := json.Marshal(after)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil || back.Count() != after.Count() || back.Quantile(0.99) != after.Quantile(0.99) {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
}
