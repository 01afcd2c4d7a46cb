package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The server's GC target follows its live heap (unless GOGC is set): the
// heap may grow by serverGCHeadroom past what is live, as a percent
// between Go's default and serverGCMax. Under message load the live heap
// is a few tens of MB, so Go's default collects every second or so, and
// each mark phase takes a core's share from the writer and the sessions
// on a small machine; with many idle sessions the live heap is hundreds of
// MB and the percent falls back to Go's default, so the memory per idle
// session is what it was. It is re-read after every collection (no timer:
// an idle server does not wake for it). Measured in docs/benchmarks.md,
// "Session 12 side by side"; operators read docs/operations.md, "Memory".
const (
	serverGCHeadroom = 96 << 20
	serverGCMin      = 100
	serverGCMax      = 400
)

// serverGCPercent is the GC percent for a live heap of live bytes.
func serverGCPercent(live uint64) int {
	if live == 0 {
		return serverGCMax
	}
	p := min(max(serverGCHeadroom*100/live, serverGCMin), serverGCMax)
	return int(p / 25 * 25) // in steps: not a new setting for every small change

}

// gcTuner sets serverGCPercent after every collection.
type gcTuner struct {
	stopped atomic.Bool
	percent int
	sample  []metrics.Sample
}

// sentinel is allocated for each cycle; its cleanup runs once a
// collection has found it unreachable. It holds a pointer so that it is
// no tiny allocation (those may share a block and never be collected).
type sentinel struct {
	_ *int
	_ [16]byte
}

// tuneServerGC starts the tuner unless GOGC is set; stop ends it.
func tuneServerGC() (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	t := &gcTuner{percent: -1, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.cycle()
	return func() {
		t.stopped.Store(true)
		debug.SetGCPercent(serverGCMin)
	}
}

// cycle sets the percent for the live heap now and arms the next call.
func (t *gcTuner) cycle() {
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := serverGCPercent(live); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	runtime.AddCleanup(&sentinel{}, func(t *gcTuner) { t.cycle() }, t)
}
