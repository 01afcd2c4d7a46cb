package workers

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waiting reports how many goroutines of this package wait for a task,
// from the runtime's own account of every goroutine's state.
func waiting() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "workers.loop") && strings.Contains(g, "[select") {
			n++
		}
	}
	return n
}

func alive() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "workers.loop(")
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
	}
}

// TestReused: a task handed while a goroutine waits runs on it, with no
// goroutine started; one handed while none waits starts one; a waiting
// goroutine ends after Idle.
func TestReused(t *testing.T) {
	waitFor(t, "no goroutine left from other tests", func() bool { return alive() == 0 })
	before := started.Load()
	done := make(chan struct{})
	Go(func() { done <- struct{}{} })
	<-done
	if got := started.Load() - before; got != 1 {
		t.Fatalf("%d goroutines started for the first task, want 1", got)
	}
	waitFor(t, "the goroutine waits for a task", func() bool { return waiting() == 1 })
	Go(func() { done <- struct{}{} })
	<-done
	if got := started.Load() - before; got != 1 {
		t.Fatalf("%d goroutines started for two tasks one after the other, want 1", got)
	}

	// Two at once: the second cannot wait for the first's goroutine.
	waitFor(t, "the goroutine waits again", func() bool { return waiting() == 1 })
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	for range 2 {
		Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
	if got := started.Load() - before; got != 2 {
		t.Fatalf("%d goroutines started, want 2 (one reused, one for the task beside it)", got)
	}
	waitFor(t, "idle goroutines end", func() bool { return alive() == 0 })
}

// TestIdleEnds: after a burst, no goroutine is left once Idle has passed,
// and nothing runs meanwhile (an idle server spends no CPU on them).
func TestIdleEnds(t *testing.T) {
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		Go(func() { defer wg.Done(); time.Sleep(time.Millisecond) })
	}
	wg.Wait()
	if alive() == 0 {
		t.Fatal("no goroutine waits right after the burst: nothing to reuse")
	}
	waitFor(t, "every goroutine ends after Idle", func() bool { return alive() == 0 })
}

// deep uses about n KiB of stack, as a task that writes to a QUIC stream
// through a few layers does.
//
//go:noinline
func deep(n int) byte {
	var pad [1024]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%len(pad)]
}

var sink byte

// BenchmarkGo: tasks one after the other, each needing 16 KiB of stack,
// on reused goroutines (Go) and on new ones (the go statement).
func BenchmarkGo(b *testing.B) {
	for _, c := range []struct {
		name string
		run  func(func())
	}{{"workers", Go}, {"go", func(f func()) { go f() }}} {
		b.Run(c.name, func(b *testing.B) {
			done := make(chan byte)
			for b.Loop() {
				c.run(func() { done <- deep(16) })
				sink += <-done
			}
		})
	}
}
