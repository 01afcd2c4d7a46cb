package homeserver

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

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
		h.clock.Add(time.Duration(float64(time.Second) / loginPerAddrPerSec)) // logins from the one test address
		c, _ := h.firstDevice(fmt.Sprint("idle", i))
		c.must(ping())
		c.must(syncFrame(0))
	}
	per := float64(settle()-base) / n
	t.Logf("%.2f goroutines per idle session", per)
	// Per session: the server's reader plus the test client's read loop;
	// reply loops, ephemeral loops and pushers hold none while idle.
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
