package homeserver

import (
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestAuthTimeout: a stream that does not authenticate within AuthTimeout
// is closed with SessionClosed(CODE_UNAUTHENTICATED) — idle, sending
// requests that need authentication, or failing Hello; an authenticated
// stream outlives the timeout. The server's timers run on the test clock.
func TestAuthTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarnessTimers(t, Config{AuthTimeout: timeout}, true)
	idle := h.connect()
	chatty := h.connect()
	chatty.fails(ping(), wire.Code_CODE_UNAUTHENTICATED)
	failed := h.connect()
	if e := failed.hello("not-a-token").GetError(); e == nil {
		t.Fatal("Hello with a bad token accepted")
	}
	good, _ := h.firstDevice("alice")
	// Every stream's auth watch is waiting (firstDevice's own streams too).
	waitFor(t, 5*time.Second, func() bool { return h.clock.pending() >= 4 })
	for _, c := range []*client{idle, chatty, failed} {
		select {
		case f := <-c.pushes:
			t.Fatalf("closed before the timeout: %v", f)
		default:
		}
	}
	h.clock.Add(timeout) // past the timeout of every stream, good's too
	for _, c := range []*client{idle, chatty, failed} {
		c.closed(wire.Code_CODE_UNAUTHENTICATED)
	}
	good.must(ping())
	select {
	case f := <-good.pushes:
		if f.GetClosed() != nil {
			t.Fatalf("authenticated stream closed: %v", f)
		}
	default:
	}
}
