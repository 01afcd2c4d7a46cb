package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/cmd/hearth/internal/impair"
)

// statsOf parses the `hearth stats:` line that --stats writes to stderr.
func statsOf(t *testing.T, stderr string) chatStats {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(line, statsPrefix); ok {
			var s chatStats
			if err := json.Unmarshal([]byte(rest), &s); err != nil {
				t.Fatalf("stats line %q: %v", line, err)
			}
			return s
		}
	}
	t.Fatalf("no %q line in stderr:\n%s", statsPrefix, stderr)
	return chatStats{}
}

// mustStats runs a chat command with --stats and returns its counters.
func (p *profile) mustStats(t *testing.T, stdin string, args ...string) chatStats {
	t.Helper()
	r := p.chat(t, stdin, append([]string{"--stats"}, args...)...)
	if r.code != 0 {
		t.Fatalf("chat %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	s := statsOf(t, r.stderr)
	t.Logf("chat %s: %s", args[0], statsSummary(s))
	return s
}

func statsSummary(s chatStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d round trips, %d requests;", s.RoundTrips, s.Requests)
	for _, c := range s.Connections {
		fmt.Fprintf(&b, " conn %s handshake %d rt %d req %d raced=%v;", c.Protocol, c.Handshake, c.RoundTrips, c.Requests, c.Raced)
	}
	for op, o := range s.Ops {
		fmt.Fprintf(&b, " %s×%d@%d..%d", op, o.Count, o.RoundTrip, o.MaxRoundTrip)
	}
	return b.String()
}

func TestRoundTripsThroughImpairedLink(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	n := &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir)
	for _, u := range []string{"alice", "bob"} {
		mustHearth(t, password(u), "admin", "--dir", dir, "user", "add", u, "--password-stdin")
	}
	relay := newRelayPair(t, n.srv.addr)
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	bob.must(t, password("bob"), bob.loginArgs(n)...)
	lossy := impair.Config{Loss: 0.05, Delay: 100 * time.Millisecond, Seed: 18}
	relay.set(t, lossy, lossy)
	alice.mustStats(t, password("alice"), alice.loginArgs(&chatNet{ca: n.ca, srv: &server{addr: relay.addr}})...)
	alice.mustStats(t, "", "send", bobAddr, "first")
	alice.mustStats(t, "", "send", bobAddr, "second")
	alice.mustStats(t, "", "send", bobAddr, "third")
	relay.set(t, impair.Config{}, impair.Config{})
	expectRecv(t, bob, aliceAddr+":first", aliceAddr+":second", aliceAddr+":third")
}
