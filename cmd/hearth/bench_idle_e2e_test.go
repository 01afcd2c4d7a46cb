package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"hearth/client/transport"
)

// TestBenchIdleTransport drives `hearth bench idle` against a real
// `hearth serve`, once on WebTransport (the default), once with
// --websocket and once with --quic (native QUIC): every session (logins and the reopened ones) is on the
// transport asked for, and the server saw all of them online.
func TestBenchIdleTransport(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)
	for _, tc := range []struct {
		flag, want, other string
	}{
		{"", transport.ProtocolWebTransport, transport.ProtocolWebSocket},
		{"--websocket", transport.ProtocolWebSocket, transport.ProtocolWebTransport},
		{"--quic", transport.ProtocolQUIC, transport.ProtocolWebTransport},
	} {
		args := []string{"idle", "--sessions", "3", "--hold", "1s", "--ramp", "20"}
		if tc.flag != "" {
			args = append([]string{tc.flag}, args...)
		}
		rep := benchJSON(t, dir, args...)
		if n := num(t, rep, "sessions_by_transport."+tc.want); n < 6 {
			t.Errorf("%s: %v %s sessions, want at least 6 (3 logins, 3 reopened)", tc.want, n, tc.want)
		}
		if by := rep["sessions_by_transport"].(map[string]any); by[tc.other] != nil {
			t.Errorf("%s: sessions by transport %v, want none on %s", tc.want, by, tc.other)
		}
		if n := num(t, rep, "idle.online_sessions_seen"); n != 3 {
			t.Errorf("%s: server saw %v sessions online, want 3", tc.want, n)
		}
		num(t, rep, "dial_retries")
		if s := num(t, rep, "idle.reopen_seconds"); s < 0.05 {
			t.Errorf("%s: 3 sessions reopened in %.3fs at 20/s, want the ramp (≈ 0.1 s)", tc.want, s)
		}
	}
}

// TestBenchCheckTransport: a run with any session on another transport
// than the one asked for fails, naming the counts; auto accepts any mix.
// --transport and --websocket resolve to one choice, webtransport by
// default; a contradiction or an unknown name is refused.
func TestBenchCheckTransport(t *testing.T) {
	for _, tc := range []struct {
		choice string
		counts map[string]int
		fail   bool
	}{
		{"webtransport", map[string]int{"webtransport": 10}, false},
		{"webtransport", map[string]int{"webtransport": 9, "websocket": 1}, true},
		{"websocket", map[string]int{"websocket": 10}, false},
		{"websocket", map[string]int{"websocket": 10, "webtransport": 1}, true},
		{"quic", map[string]int{"quic": 10}, false},
		{"quic", map[string]int{"quic": 9, "webtransport": 1}, true},
		{"auto", map[string]int{"quic": 9, "websocket": 1}, false},
	} {
		d := newBenchDialer(64, tc.choice)
		d.protocols = tc.counts
		err := d.checkTransport()
		if (err != nil) != tc.fail {
			t.Errorf("%s, %v: error %v, want failure %v", tc.choice, tc.counts, err, tc.fail)
		}
		if err != nil && !strings.Contains(err.Error(), "not the requested") {
			t.Errorf("error %q does not say what was requested", err)
		}
	}
	for _, tc := range []struct {
		flag    string
		forceWS bool
		want    string // "" : refused
	}{
		{"", false, "webtransport"}, {"", true, "websocket"}, {"websocket", true, "websocket"},
		{"quic", false, "quic"}, {"auto", false, "auto"}, {"webtransport", false, "webtransport"},
		{"quic", true, ""}, {"carrier-pigeon", false, ""},
	} {
		got, err := benchTransport(tc.flag, tc.forceWS)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("--transport %q --websocket=%v: %q, %v; want %q", tc.flag, tc.forceWS, got, err, tc.want)
		}
	}
}

// TestBenchIdleServerMemory: with --server-pprof, `hearth bench idle`
// reads the server's memory after a GC that returned freed memory to the
// OS, at the baseline and while it holds the sessions, and reports RSS,
// heap (in use and live), stacks and goroutines per session; held sessions cost goroutines
// and heap.
func TestBenchIdleServerMemory(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	startServe(t, dir, nil, "--dir", dir, "--pprof", pprofAddr)
	rep := benchJSON(t, dir, "--quic", "idle", "--sessions", "20", "--hold", "1s", "--ramp", "100", "--wire", "--server-pprof", pprofAddr)
	for _, k := range []string{"rss_bytes_per_session", "server_rss_baseline_mb", "server_rss_held_mb"} {
		num(t, rep, "idle.after_free."+k)
	}
	if g := num(t, rep, "idle.after_free.goroutines_per_session"); g < 1 {
		t.Errorf("%.2f goroutines per held session, want at least 1", g)
	}
	if h := num(t, rep, "idle.after_free.heap_inuse_bytes_per_session"); h <= 0 {
		t.Errorf("%.0f heap bytes per held session, want more than 0", h)
	}
	if l := num(t, rep, "idle.after_free.heap_live_bytes_per_session"); l <= 0 {
		t.Errorf("%.0f live heap bytes per held session, want more than 0", l)
	}
}
