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
	t.Logf("%s: %s", s.Command, statsSummary(s))
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

// mustStatsEnv is mustStats with env added to the binary's environment.
func (p *profile) mustStatsEnv(t *testing.T, env []string, args ...string) chatStats {
	t.Helper()
	r := hearth(t, env, "", append([]string{"chat", "--profile", p.dir, "--stats"}, args...)...)
	if r.code != 0 {
		t.Fatalf("chat %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	s := statsOf(t, r.stderr)
	t.Logf("%s %v %v: %s", s.Command, args[:len(args)-3], env, statsSummary(s))
	return s
}

// checkReturningSend asserts the round trips of a `chat send` by a device
// that is logged in and in the conversation already, from the counters:
// one connection; its handshake (2 WebTransport, 3 WebSocket); Hello and
// Sync answered together one round trip later (pipelined); then the
// check of the peer's device list and the Send, one round trip each.
func checkReturningSend(t *testing.T, s chatStats, protocol string, raced bool) {
	t.Helper()
	if len(s.Connections) != 1 {
		t.Fatalf("send used %d connections, want 1: %s", len(s.Connections), statsSummary(s))
	}
	c := s.Connections[0]
	if c.Protocol != protocol || c.Raced != raced {
		t.Errorf("send over %s (raced %v), want %s (raced %v)", c.Protocol, c.Raced, protocol, raced)
	}
	hs := map[string]int{"webtransport": 2, "websocket": 3}[protocol]
	want := map[string]int{"client.Hello": hs + 1, "client.Sync": hs + 1, "client.FetchDeviceLists": hs + 2, "client.Send": hs + 3}
	for op, rt := range want {
		if o := s.Ops[op]; o.Count != 1 || o.RoundTrip != rt {
			t.Errorf("%s: %d answers, first at round trip %d; want 1 at %d", op, o.Count, o.RoundTrip, rt)
		}
	}
	if c.Handshake != hs || s.RoundTrips != hs+3 {
		t.Errorf("handshake %d, %d round trips in all; want %d and %d", c.Handshake, s.RoundTrips, hs, hs+3)
	}
}

// TestRoundTripsThroughImpairedLink: the round trips of login and of
// `chat send` through the relay at 5 % loss and RTT 200 ms, asserted from
// the --stats counters (loss and delay change the time, not the count):
// a returning device's send costs its transport's handshake + 3 (Hello
// with Sync, the device-list check, the Send). With UDP blocked (every
// datagram dropped) auto mode races the WebSocket instead of waiting out
// the QUIC timeout; --transport and HEARTH_TRANSPORT force one. Bob
// receives every message once, in order.
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

	login := alice.mustStats(t, password("alice"), append([]string{"--transport", "webtransport"}, alice.loginArgs(&chatNet{ca: n.ca, srv: &server{addr: relay.addr}})...)...)
	if o := login.Ops["client.Login"]; o.Count != 1 || o.RoundTrip != 3 {
		t.Errorf("Login answered %d times, first at round trip %d; want once at 3 (handshake 2 + 1)", o.Count, o.RoundTrip)
	}
	var want []string
	send := func(args []string, env []string, text string) chatStats {
		want = append(want, aliceAddr+":"+text)
		return alice.mustStatsEnv(t, env, append(args, "send", bobAddr, text)...)
	}
	first := send(nil, nil, "first") // creates the conversation: more round trips, logged
	if first.Ops["client.Send"].Count != 1 {
		t.Errorf("first send: %s", statsSummary(first))
	}
	checkReturningSend(t, send([]string{"--transport", "webtransport"}, nil, "returning"), "webtransport", false)
	checkReturningSend(t, send([]string{"--transport", "websocket"}, nil, "forced websocket"), "websocket", false)
	checkReturningSend(t, send(nil, []string{"HEARTH_TRANSPORT=websocket"}, "websocket from env"), "websocket", false)

	blocked := impair.Config{Loss: 1}
	relay.set(t, blocked, lossy)
	tcp0 := relay.tcp.Stats().Flows
	checkReturningSend(t, send(nil, nil, "udp blocked"), "websocket", true)
	if got := relay.tcp.Stats().Flows - tcp0; got != 1 {
		t.Errorf("UDP blocked: %d TCP connections, want 1", got)
	}
	r := alice.chat(t, "", "--transport", "carrier-pigeon", "send", bobAddr, "never")
	if r.code == 0 || !strings.Contains(r.stderr, "unknown transport") {
		t.Errorf("--transport carrier-pigeon: exit %d, stderr %q", r.code, r.stderr)
	}

	relay.set(t, impair.Config{}, impair.Config{})
	expectRecv(t, bob, want...)
}
