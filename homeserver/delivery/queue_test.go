package delivery

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQueue: functions run in push order; the runner goroutine exists
// only while something is queued; push blocks at capacity and tryPush
// drops there.
func TestQueue(t *testing.T) {
	q := NewQueue(4)
	var mu sync.Mutex
	var got []int
	for i := range 100 {
		q.Push(func() { mu.Lock(); got = append(got, i); mu.Unlock() })
	}
	q.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("ran out of order: %v", got)
		}
	}
	if len(got) != 100 {
		t.Fatalf("ran %d of 100", len(got))
	}
	q.mu.Lock()
	running := q.running
	q.mu.Unlock()
	if running {
		t.Fatal("runner still marked running with an empty queue")
	}

	// Block the runner; fill the queue; tryPush then drops and push waits.
	release := make(chan struct{})
	started := make(chan struct{})
	q.Push(func() { close(started); <-release })
	<-started
	for i := range 4 {
		if !q.TryPush(func() {}) {
			t.Fatalf("tryPush %d refused below capacity", i)
		}
	}
	if q.TryPush(func() {}) {
		t.Fatal("tryPush accepted beyond capacity")
	}
	pushed := make(chan struct{})
	go func() { q.Push(func() {}); close(pushed) }()
	select {
	case <-pushed:
		t.Fatal("push did not wait at capacity")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-pushed
	q.Wait()
	if n := q.Waiting(); n != 0 || q.items != nil {
		t.Fatalf("%d left queued (buffer %v kept while idle)", n, q.items != nil)
	}
}

// TestQueueRunsOnWorkers: a queue's runner is a workers goroutine, which
// waits a moment for the next task with the stack it grew instead of
// ending (a new goroutine per run grew its stack again each time: 3–4 %
// of the server's CPU flat out).
func TestQueueRunsOnWorkers(t *testing.T) {
	q := NewQueue(4)
	var stack string
	q.Push(func() {
		buf := make([]byte, 64<<10)
		stack = string(buf[:runtime.Stack(buf, false)])
	})
	q.Wait()
	if !strings.Contains(stack, "hearth/homeserver/workers.loop") {
		t.Fatalf("the runner is not a workers goroutine:\n%s", stack)
	}
}
