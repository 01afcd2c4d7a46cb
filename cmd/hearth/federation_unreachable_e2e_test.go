package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// setFederationConfig replaces the "federation" object of f's config.json
// (the server reads it when it next starts).
func setFederationConfig(t *testing.T, f *fedServer, fed map[string]any) {
	t.Helper()
	f.editConfig(t, func(cfg map[string]any) { cfg["federation"] = fed })
}

// TestFederationPeerDownAnswersFast: with b.example stopped, alice@a
// sends bob@b 20 messages; the conversation is hubbed at a, so each send
// completes, and bob gets them all, in order, when b is back. a answers
// the device-list fetches for bob that a client makes before sending with
// CODE_UNAVAILABLE naming b, and within the backoff without trying b: 10
// fetches in a row make at most one real attempt.
func TestFederationPeerDownAnswersFast(t *testing.T) {
	skipShort(t)
	a, b, alice, bob := fedPair(t)
	// A backoff long enough that a burst of fetches falls inside it.
	a.srv.stop(t, syscall.SIGTERM)
	setFederationConfig(t, a, map[string]any{"backoff_base": "1s", "backoff_max": "8s", "send_wait": "3s"})
	a.start(t)

	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice.must(t, "", "send", bobAt, "before")
	expectRecv(t, bob, aliceAt+":before")
	carol := newE2EDevice(t, a, "carol") // asks a for bob's list directly

	// A mistyped domain: answered at once, for good, naming the domain
	// (.invalid is never looked up). What `send` makes of it is the
	// client's part; it is logged here.
	typo := &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: "bob@nowhere.invalid"}}}
	if r, err := carol.call(typo, 20*time.Second); err != nil || r.GetError().GetCode() != wire.Code_CODE_NOT_FOUND || r.GetError().GetRetryable() ||
		!strings.Contains(r.GetError().GetMessage(), "no Hearth server for nowhere.invalid") {
		t.Fatalf("fetch of bob@nowhere.invalid: %v %v", r, err)
	}
	start := time.Now()
	res := alice.chat(t, "", "send", "bob@nowhere.invalid", "typo")
	t.Logf("send bob@nowhere.invalid: exit %d after %s: stdout %q stderr %q", res.code, time.Since(start).Round(time.Millisecond), res.stdout, res.stderr)

	b.srv.stop(t, syscall.SIGTERM)
	var total time.Duration
	var each []string
	for i := range 20 {
		start := time.Now()
		alice.must(t, "", "send", bobAt, fmt.Sprintf("down %d", i))
		d := time.Since(start)
		total += d
		each = append(each, d.Round(10*time.Millisecond).String())
	}
	t.Logf("20 sends with b down: %s in all, %s each on average (%s)", total.Round(time.Millisecond), (total / 20).Round(time.Millisecond), strings.Join(each, " "))

	tries := func() int { return strings.Count(a.srv.log(), "query got no answer") }
	fetch := &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: bobAt}}}
	r, err := carol.call(fetch, 20*time.Second) // may be the probe after a backoff
	if err != nil || r.GetError().GetCode() != wire.Code_CODE_UNAVAILABLE || !strings.Contains(r.GetError().GetMessage(), "b.example is unreachable") {
		t.Fatalf("fetch of bob's list with b down: %v %v", r, err)
	}
	before := tries()
	for range 10 {
		r, err := carol.call(fetch, 20*time.Second)
		if e := r.GetError(); err != nil || e.GetCode() != wire.Code_CODE_UNAVAILABLE || !e.GetRetryable() ||
			!strings.Contains(e.GetMessage(), "b.example is unreachable; retrying in") {
			t.Fatalf("fetch of bob's list with b down: %v %v", r, err)
		}
	}
	if n := tries() - before; n > 1 {
		t.Fatalf("10 fetches in a row tried b %d times, want at most 1 (the rest answered at once)", n)
	}

	b.start(t)
	all := recvUntil(t, bob, aliceAt, "down 19")
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("%s:down %d", aliceAt, i))
	}
	if got := strings.Join(texts(all), " | "); got != strings.Join(want, " | ") {
		t.Fatalf("bob received %q, want %q", got, strings.Join(want, " | "))
	}
}
