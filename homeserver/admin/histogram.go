package admin

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histograms of the server's stages (Status.SendStages). Values
// are microseconds in log-linear buckets: 0..3 µs exactly, then four
// buckets per power of two, so a bucket is at most 25 % wide; the last
// bucket holds everything from about 9 days on.
const (
	histSub     = 4   // buckets per power of two
	histBuckets = 160 // up to 2^41 µs
)

// Histogram is one stage's latency histogram as the status reports it:
// cumulative since the server started. Sub gives an interval's.
type Histogram struct {
	Counts []uint64 `json:"counts"` // Counts[i]: values in bucket i (BucketBounds)
	SumUs  uint64   `json:"sum_us"`
	MaxUs  uint64   `json:"max_us"` // largest value seen since start
}

// bucketOf returns the bucket of a value in microseconds.
func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := 63 - bits.LeadingZeros64(us) // us in [2^e, 2^(e+1)), e >= 2
	sub := int(us>>(e-2)) & (histSub - 1)
	return min(histSub+(e-2)*histSub+sub, histBuckets-1)
}

// BucketBounds returns the smallest and largest value (µs) of bucket i.
func BucketBounds(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	e := (i-histSub)/histSub + 2
	sub := uint64((i - histSub) % histSub)
	lo = (histSub + sub) << (e - 2)
	return lo, lo + 1<<(e-2) - 1
}

// Count is how many values the histogram holds.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Sub returns the values h holds that before (an earlier snapshot of the
// same histogram) did not: the interval between the two. MaxUs stays h's.
func (h Histogram) Sub(before Histogram) Histogram {
	out := Histogram{Counts: make([]uint64, len(h.Counts)), SumUs: h.SumUs - min(before.SumUs, h.SumUs), MaxUs: h.MaxUs}
	for i, c := range h.Counts {
		if i < len(before.Counts) {
			c -= min(before.Counts[i], c)
		}
		out.Counts[i] = c
	}
	return out
}

// Quantile returns the nearest-rank quantile q (0 < q ≤ 1) as the upper
// bound of its bucket (at most 25 % above the true value), never above
// MaxUs; 0 for an empty histogram.
func (h Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= rank {
			_, hi := BucketBounds(i)
			if h.MaxUs > 0 {
				hi = min(hi, h.MaxUs)
			}
			return time.Duration(hi) * time.Microsecond
		}
	}
	return time.Duration(h.MaxUs) * time.Microsecond
}

// Mean is the average value; 0 for an empty histogram.
func (h Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(h.SumUs/n) * time.Microsecond
}

// LatencyRecorder is a live histogram: Observe is a few atomic adds, safe
// for concurrent use; the zero value is ready.
type LatencyRecorder struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// Observe records one duration (negative counts as 0).
func (l *LatencyRecorder) Observe(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	l.counts[bucketOf(us)].Add(1)
	l.sum.Add(us)
	for {
		m := l.max.Load()
		if us <= m || l.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Snapshot returns the values recorded so far. Concurrent Observes may be
// partly in it (counts, sum and max are read one after another).
func (l *LatencyRecorder) Snapshot() Histogram {
	h := Histogram{Counts: make([]uint64, histBuckets), SumUs: l.sum.Load(), MaxUs: l.max.Load()}
	last := -1
	for i := range l.counts {
		if h.Counts[i] = l.counts[i].Load(); h.Counts[i] > 0 {
			last = i
		}
	}
	h.Counts = h.Counts[:last+1] // trailing empty buckets are left out
	return h
}

// WriterStages times the storage writer's batches (it implements
// storage.CommitObserver; cmd/hearth wires it): Transaction is BEGIN to
// the end of COMMIT, Fsync the COMMIT alone (with synchronous=FULL, the
// WAL write and its fsync). One value per batch, not per message.
type WriterStages struct {
	Transaction, Fsync LatencyRecorder
}

// ObserveCommit records one committed batch.
func (w *WriterStages) ObserveCommit(_ int, total, commit time.Duration) {
	w.Transaction.Observe(total)
	w.Fsync.Observe(commit)
}
