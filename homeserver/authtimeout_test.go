package homeserver

import (
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestAuthTimeout: a stream that does not authenticate within AuthTimeout
// is closed with SessionClosed(CODE_UNAUTHENTICATED) — idle, sending
// requests that need authentication, or failing Hello; an authenticated
// stream outlives the timeout.
func TestAuthTimeout(t *testing.T) {
	h := newHarness(t, Config{AuthTimeout: 300 * time.Millisecond})
	idle := h.connect()
	chatty := h.connect()
	chatty.fails(ping(), wire.Code_CODE_UNAUTHENTICATED)
	failed := h.connect()
	if e := failed.hello("not-a-token").GetError(); e == nil {
		t.Fatal("Hello with a bad token accepted")
	}
	good, _ := h.firstDevice("alice")
	for _, c := range []*client{idle, chatty, failed} {
		c.closed(wire.Code_CODE_UNAUTHENTICATED)
	}
	time.Sleep(400 * time.Millisecond) // past the timeout of good's stream too
	good.must(ping())
	select {
	case f := <-good.pushes:
		if f.GetClosed() != nil {
			t.Fatalf("authenticated stream closed: %v", f)
		}
	default:
	}
}
