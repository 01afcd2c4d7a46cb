package testutil

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of ending the goroutine.
type fakeTB struct {
	testing.TB
	fatal []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = append(f.fatal, fmt.Sprintf(format, args...))
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	tb := &fakeTB{TB: t}
	calls := 0
	start := time.Now()
	WaitFor(tb, 10*time.Second, func() error {
		if calls++; calls < 5 {
			return fmt.Errorf("%d of 5 calls", calls)
		}
		return nil
	})
	if len(tb.fatal) != 0 {
		t.Fatalf("WaitFor failed the test: %q", tb.fatal)
	}
	if calls != 5 {
		t.Errorf("cond called %d times, want 5 (until true, then no more)", calls)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitFor took %v for a condition true on the 5th poll", d)
	}
}

func TestWaitForImmediate(t *testing.T) {
	tb := &fakeTB{TB: t}
	calls := 0
	WaitFor(tb, time.Nanosecond, func() error { calls++; return nil })
	if calls != 1 || len(tb.fatal) != 0 {
		t.Fatalf("a true condition: %d calls, failures %q", calls, tb.fatal)
	}
}

func TestWaitForTimeoutFailsWithLastError(t *testing.T) {
	tb := &fakeTB{TB: t}
	calls := 0
	start := time.Now()
	WaitFor(tb, 50*time.Millisecond, func() error {
		calls++
		return fmt.Errorf("server has %d sessions, want 0", calls)
	})
	elapsed := time.Since(start)
	if len(tb.fatal) != 1 {
		t.Fatalf("Fatalf called %d times, want once: %q", len(tb.fatal), tb.fatal)
	}
	want := fmt.Sprintf("still waiting after 50ms: server has %d sessions, want 0", calls)
	if tb.fatal[0] != want {
		t.Errorf("failure %q, want %q (the last error)", tb.fatal[0], want)
	}
	if calls < 3 {
		t.Errorf("cond polled %d times in 50ms", calls)
	}
	if elapsed < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the 50ms timeout", elapsed)
	}
	if !strings.Contains(tb.fatal[0], "sessions") {
		t.Errorf("failure does not say what was awaited: %q", tb.fatal[0])
	}
}
