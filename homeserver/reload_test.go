package homeserver

import (
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestReloadSendRateLimit: Reload changes the send limit of a live
// session from its next Send on: down to a burst of 1, then back up.
func TestReloadSendRateLimit(t *testing.T) {
	h := newHarness(t, Config{RateLimit: RateLimit{PerSecond: 100, Burst: 100}})
	alice, _ := twoUsers(t, h)
	alice.must(appMsg(conv, "1", 1, "x"))
	alice.must(appMsg(conv, "2", 1, "x"))
	if err := h.s.Reload(Reloadable{RateLimit: RateLimit{PerSecond: 1, Burst: 1}}); err != nil {
		t.Fatal(err)
	}
	alice.must(appMsg(conv, "3", 1, "x")) // the bucket is cut to the new burst: one left
	alice.fails(appMsg(conv, "4", 1, "x"), wire.Code_CODE_RATE_LIMITED)
	if err := h.s.Reload(Reloadable{RateLimit: RateLimit{PerSecond: 100, Burst: 100}}); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(time.Second)
	for _, id := range []string{"4", "5", "6"} {
		alice.must(appMsg(conv, id, 1, "x"))
	}
	if err := h.s.Reload(Reloadable{RateLimit: RateLimit{PerSecond: -1}}); err == nil {
		t.Fatal("a negative limit accepted")
	}
	alice.must(appMsg(conv, "7", 1, "x")) // the refused reload changed nothing
}
