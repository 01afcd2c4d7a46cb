package loadgen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bench message texts: "hb1 RUN SENDER SEQ UNIXNANO pad…" (measured) and
// "hbw RUN SENDER" (warm-up: creates the conversation, not measured).
const (
	tagMsg  = "hb1"
	tagWarm = "hbw"
)

// benchText returns the text of message seq from sender, scheduled at t,
// padded with 'x' to size bytes (never shorter than the header).
func benchText(run string, sender int, seq uint64, t time.Time, size int) string {
	h := fmt.Sprintf("%s %s %d %d %d ", tagMsg, run, sender, seq, t.UnixNano())
	if pad := size - len(h); pad > 0 {
		return h + strings.Repeat("x", pad)
	}
	return h
}

func warmText(run string, sender int) string { return fmt.Sprintf("%s %s %d", tagWarm, run, sender) }

// key identifies one measured message.
type key struct {
	sender int
	seq    uint64
}

// recorder is the receiving side of a run.
type recorder struct {
	run string
	now func() time.Time

	mu   sync.Mutex
	seen map[key]time.Duration // latency of each delivered message
	lat  []time.Duration
	// fromSrv and srvLat (wire mode): the server's acceptance of each
	// message (Delivery.server_time_ms) → its arrival here.
	fromSrv   map[key]time.Duration
	srvLat    []time.Duration
	delivered int
	dups      int
	foreign   int            // not from this run (or unparsable)
	reordered int            // arrived after a later message of the same sender
	top       map[int]uint64 // highest sequence seen per sender
	first     time.Time
	last      time.Time
	warm      map[int]chan struct{} // sender -> closed when its warm-up arrived
	onDeliver func(key)
}

func newRecorder(run string, now func() time.Time) *recorder {
	return &recorder{run: run, now: now, seen: map[key]time.Duration{}, fromSrv: map[key]time.Duration{},
		warm: map[int]chan struct{}{}, top: map[int]uint64{}}
}

// warmSeen returns the channel closed when sender's warm-up arrives.
func (r *recorder) warmSeen(sender int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.warm[sender]
	if !ok {
		ch = make(chan struct{})
		r.warm[sender] = ch
	}
	return ch
}

// note records one received message text.
func (r *recorder) note(text string) {
	at := r.now()
	f := strings.Fields(text)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(f) == 3 && f[0] == tagWarm && f[1] == r.run {
		s, err := strconv.Atoi(f[2])
		if err != nil {
			r.foreign++
			return
		}
		ch, ok := r.warm[s]
		if !ok {
			ch = make(chan struct{})
			r.warm[s] = ch
		}
		select {
		case <-ch:
		default:
			close(ch)
		}
		return
	}
	if len(f) < 5 || f[0] != tagMsg || f[1] != r.run {
		r.foreign++
		return
	}
	if !r.record(f[2], f[3], f[4], at) {
		r.foreign++
	}
}

// noteID records a wire-mode delivery by its message id (wireID); false
// when id is not a bench message of this run (nothing is recorded).
// accepted is the server's time of acceptance (Delivery.server_time_ms,
// milliseconds since the epoch, truncated); 0: not known.
func (r *recorder) noteID(id string, accepted int64) bool {
	at := r.now()
	f := strings.SplitN(id, ".", 6)
	if len(f) != 5 || f[0] != tagMsg || f[1] != r.run {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dups := r.dups
	if !r.record(f[2], f[3], f[4], at) {
		return false
	}
	if accepted > 0 && r.dups == dups {
		s, _ := strconv.Atoi(f[2])
		seq, _ := strconv.ParseUint(f[3], 10, 64)
		l := at.Sub(time.UnixMilli(accepted))
		r.fromSrv[key{s, seq}] = l
		r.srvLat = append(r.srvLat, l)
	}
	return true
}

// noteForeign counts a delivery that is not a bench message.
func (r *recorder) noteForeign() {
	r.mu.Lock()
	r.foreign++
	r.mu.Unlock()
}

// record notes message seq of sender, due at ns (decimal fields), arrived
// at at; false when a field does not parse. Called with r.mu held.
func (r *recorder) record(sender, seqText, nsText string, at time.Time) bool {
	s, err1 := strconv.Atoi(sender)
	seq, err2 := strconv.ParseUint(seqText, 10, 64)
	ns, err3 := strconv.ParseInt(nsText, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || s < 0 || seq == 0 {
		return false
	}
	k := key{s, seq}
	if _, dup := r.seen[k]; dup {
		r.dups++
		return true
	}
	if seq < r.top[s] {
		r.reordered++
	}
	r.top[s] = max(r.top[s], seq)
	l := at.Sub(time.Unix(0, ns))
	r.seen[k] = l
	r.delivered++
	r.lat = append(r.lat, l)
	if r.first.IsZero() {
		r.first = at
	}
	r.last = at
	if r.onDeliver != nil {
		r.onDeliver(k)
	}
	return true
}

// counts returns delivered and duplicates so far.
func (r *recorder) counts() (delivered, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered, r.dups
}

// has reports whether k was delivered.
func (r *recorder) has(k key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.seen[k]
	return ok
}

// recentP99 is the p99 of the last n latencies (progress line).
func (r *recorder) recentP99(n int) time.Duration {
	r.mu.Lock()
	l := r.lat[max(0, len(r.lat)-n):]
	c := slices.Clone(l)
	r.mu.Unlock()
	return Summarize(c).p(0.99)
}

// Latency summarizes a set of durations in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`

	sorted []time.Duration
}

// Summarize sorts ds (in place) and computes the percentiles.
func Summarize(ds []time.Duration) Latency {
	slices.Sort(ds)
	l := Latency{Count: len(ds), sorted: ds}
	if len(ds) == 0 {
		return l
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	l.P50, l.P90, l.P99, l.P999 = ms(l.p(0.5)), ms(l.p(0.9)), ms(l.p(0.99)), ms(l.p(0.999))
	l.Max = ms(ds[len(ds)-1])
	l.Mean = ms(sum / time.Duration(len(ds)))
	return l
}

// p is the nearest-rank percentile q of the sorted durations.
func (l Latency) p(q float64) time.Duration {
	if len(l.sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(l.sorted))+0.999999) - 1
	return l.sorted[min(max(i, 0), len(l.sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
