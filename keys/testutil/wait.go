package testutil

import (
	"testing"
	"time"
)

// Polling starts after firstPoll and doubles up to maxPoll: quick for
// conditions that are nearly true, cheap for ones that take seconds.
const (
	firstPoll = time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// WaitFor calls cond until it returns nil and fails tb (Fatalf) if it
// still returns an error after timeout. cond's error says what is
// awaited and how far it got ("server has 2 sessions, want 0"); the last
// one is the failure message. Call it only from the test's goroutine.
func WaitFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	poll := firstPoll
	for {
		err := cond()
		if err == nil {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("still waiting after %v: %v", timeout, err)
			return // a fake TB's Fatalf returns
		}
		time.Sleep(min(poll, left))
		poll = min(2*poll, maxPoll)
	}
}
