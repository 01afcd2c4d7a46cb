package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestServerGCPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, serverGCMax},
		{4 << 20, serverGCMax},   // a server under message load
		{32 << 20, 300},          // 96 MiB of headroom
		{40 << 20, 225},          // 240 % in steps of 25
		{96 << 20, serverGCMin},  // Go's default from here on
		{600 << 20, serverGCMin}, // 10,000 idle sessions
	} {
		if got := serverGCPercent(c.live); got != c.want {
			t.Errorf("live %d MiB: %d %%, want %d", c.live>>20, got, c.want)
		}
	}
}

// gcPercent reads the runtime's GC percent.
func gcPercent() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestServerGCTuner: without GOGC the server's GC percent follows the
// live heap after each collection and returns to Go's default when the
// server stops; with GOGC set, Go's own reading of it stands.
func TestServerGCTuner(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	t.Setenv("GOGC", "")
	stop := tuneServerGC()
	want := uint64(serverGCPercent(liveHeap()))
	if got := gcPercent(); got != want {
		t.Fatalf("after start: GC percent %d, want %d", got, want)
	}
	// A live heap past the headroom brings it back to the default,
	// after the collections that find it.
	big := make([][]byte, 0, 128)
	for range 128 {
		big = append(big, make([]byte, 1<<20))
	}
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() != serverGCMin && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := gcPercent(); got != serverGCMin {
		t.Fatalf("with %d MiB live: GC percent %d, want %d", liveHeap()>>20, got, serverGCMin)
	}
	runtime.KeepAlive(big)
	big = nil
	for gcPercent() == serverGCMin && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := gcPercent(); got <= serverGCMin {
		t.Fatalf("after the heap was freed: GC percent %d", got)
	}
	stop()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if got := gcPercent(); got != serverGCMin {
		t.Fatalf("after stop: GC percent %d, want %d", got, serverGCMin)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	stop = tuneServerGC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if got := gcPercent(); got != 150 {
		t.Fatalf("with GOGC=150: GC percent %d", got)
	}
	stop()
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
