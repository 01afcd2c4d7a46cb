package homeserver

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestLazyQueue: functions run in push order; the runner goroutine exists
// only while something is queued; push blocks at capacity and tryPush
// drops there.
func TestLazyQueue(t *testing.T) {
	q := newLazyQueue(4)
	var mu sync.Mutex
	var got []int
	for i := range 100 {
		q.push(func() { mu.Lock(); got = append(got, i); mu.Unlock() })
	}
	q.wait()
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
	q.push(func() { close(started); <-release })
	<-started
	for i := range 4 {
		if !q.tryPush(func() {}) {
			t.Fatalf("tryPush %d refused below capacity", i)
		}
	}
	if q.tryPush(func() {}) {
		t.Fatal("tryPush accepted beyond capacity")
	}
	pushed := make(chan struct{})
	go func() { q.push(func() {}); close(pushed) }()
	select {
	case <-pushed:
		t.Fatal("push did not wait at capacity")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-pushed
	q.wait()
	if n := q.waiting(); n != 0 || q.items != nil {
		t.Fatalf("%d left queued (buffer %v kept while idle)", n, q.items != nil)
	}
}

// TestIdleSessionGoroutines: an authenticated, synced, idle session holds
// one goroutine on the server (its reader), whatever it did before:
// replies, ephemeral pushes and deliveries run on goroutines that end when
// there is nothing left to do. Deliveries still arrive after that.
func TestIdleSessionGoroutines(t *testing.T) {
	h := newHarness(t, Config{AuthTimeout: -1})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1) // the welcome
	alice.must(syncFrame(0))
	const n = 20
	settle := func() int {
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		return runtime.NumGoroutine()
	}
	base := settle()
	for i := range n {
		c, _ := h.firstDevice(fmt.Sprint("idle", i))
		c.must(ping())
		c.must(syncFrame(0))
	}
	per := float64(settle()-base) / n
	t.Logf("%.2f goroutines per idle session", per)
	// Per session: the server's reader plus the test client's read loop;
	// the old design had 5 (reply loop, ephemeral loop, pusher).
	if per > 2.2 {
		t.Fatalf("%.1f goroutines per idle session, want 2 (server reader, test client reader)", per)
	}
	// An idle pusher still delivers, in order, and acks move its window.
	for i := range 3 {
		alice.must(appMsg(conv, fmt.Sprint("late", i), 1, fmt.Sprint("after idling ", i)))
	}
	for i, d := range bob.deliveries(3) {
		if string(d.Payload) != fmt.Sprint("after idling ", i) {
			t.Fatalf("delivery %d after idling: %v", i, d)
		}
	}
	bob.noDelivery()
}
