package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchPairsVia: `hearth bench pairs --via SPEC` runs its fleet through
// the impairment relay (loss and delay both ways): every message sent is
// acknowledged and delivered exactly once, the report names the spec and
// the upstream server, and the relay's counters show the loss applied. A
// bad spec is refused before anything runs.
func TestBenchPairsVia(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)

	const spec = "loss=5%,rtt=100ms,seed=18"
	rep := benchJSON(t, dir, "pairs", "--via", spec, "--users", "2", "--rate", "10", "--duration", "1s", "--size", "200")
	sent, acked, delivered := num(t, rep, "sent"), num(t, rep, "acked"), num(t, rep, "delivered")
	if sent < 5 || acked != sent || delivered != acked {
		t.Errorf("sent %v acked %v delivered %v: want all acknowledged and delivered", sent, acked, delivered)
	}
	if l, d := num(t, rep, "lost"), num(t, rep, "duplicates"); l != 0 || d != 0 {
		t.Errorf("lost %v duplicates %v, want 0", l, d)
	}
	params, _ := rep["params"].(map[string]any)
	if params["via"] != spec || params["via_upstream"] == params["server"] {
		t.Errorf("params %v: want via %q and the relay as server", params, spec)
	}
	notes, _ := rep["notes"].([]any)
	found := false
	for _, n := range notes {
		if s, _ := n.(string); strings.HasPrefix(s, "via relay: UDP up ") && !strings.Contains(s, "up 0 datagrams") {
			found = true
		}
	}
	if !found {
		t.Errorf("no relay counters in the notes: %v", notes)
	}

	r := hearth(t, nil, "", "bench", "--dir", dir, "--via", "loss=lots", "pairs", "--users", "2", "--duration", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "--via") {
		t.Errorf("bad --via: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestBenchViaRebinding: `bench pairs --via 'rtt=40ms,rebind=300ms'`
// (the client's port changes every 300 ms) sets up and delivers every
// message exactly once over the sessions it opened first: none is lost and
// dialled again although each lives through many rebindings. Sessions
// sharing a UDP socket (the bench's pool before it gave each session its
// own socket under rebind=) carry connection IDs, and quic-go's server
// follows such a connection through two or three address changes only:
// the logins timed out ("no recent network activity").
func TestBenchViaRebinding(t *testing.T) {
	parallelE2E(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)

	const users = 2
	rep := benchJSON(t, dir, "--via", "rtt=40ms,rebind=300ms,seed=18", "pairs", "--users", "2", "--rate", "4", "--duration", "3s", "--drain", "20s")
	sent, acked, delivered := num(t, rep, "sent"), num(t, rep, "acked"), num(t, rep, "delivered")
	if sent < 8 || acked != sent || delivered != acked {
		t.Errorf("sent %v acked %v delivered %v: want all acknowledged and delivered", sent, acked, delivered)
	}
	if l, d := num(t, rep, "lost"), num(t, rep, "duplicates"); l != 0 || d != 0 {
		t.Errorf("lost %v duplicates %v, want 0", l, d)
	}
	params, _ := rep["params"].(map[string]any)
	sessions := 0.0
	for _, n := range rep["sessions_by_transport"].(map[string]any) {
		sessions += n.(float64)
	}
	rebinds := num(t, rep, "params.via_rebinds")
	// Each device opens 3 sessions (login, its client, its receiver) and
	// keeps them; a session lost to a rebinding would be dialled again.
	if params["per_socket"] != 1.0 || sessions > 3*users || rebinds < 5*sessions {
		t.Errorf("per_socket %v, %v sessions, %v rebinds: want 1 socket per session, at most %d sessions living through ≥ 5 rebindings each",
			params["per_socket"], sessions, rebinds, 3*users)
	}
}

// TestBenchMedia: `bench media` sends a file from one device to the other
// through the relay (2 % loss, RTT 20 ms) over native QUIC; the other
// downloads it and it matches byte for byte; the report has both
// throughputs. A file of 1.2 MB with --connections 3 goes over 3
// connections of each device (the report counts their sessions). A bad
// size and a bad number of connections are refused.
func TestBenchMedia(t *testing.T) {
	parallelE2E(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)

	rep := benchJSON(t, dir, "--transport", "quic", "--via", "loss=2%,rtt=20ms,seed=18", "media", "--file-size", "300000", "--files", "2")
	if f, d, e := num(t, rep, "media.files"), num(t, rep, "delivered"), num(t, rep, "send_errors"); f != 2 || d != 2 || e != 0 {
		t.Errorf("media files %v, delivered %v, errors %v; want 2, 2, 0", f, d, e)
	}
	if s := num(t, rep, "media.sealed_bytes"); s <= 300000 {
		t.Errorf("sealed bytes %v, want more than the plaintext", s)
	}
	if u, d := num(t, rep, "media.upload_mb_per_second"), num(t, rep, "media.download_mb_per_second"); u <= 0 || d <= 0 {
		t.Errorf("throughput up %v, down %v MB/s", u, d)
	}
	if n := num(t, rep, "media.upload.count"); n != 2 {
		t.Errorf("%v upload timings, want 2", n)
	}
	tr, _ := rep["sessions_by_transport"].(map[string]any)
	if len(tr) != 1 || tr["quic"] == nil {
		t.Errorf("sessions by transport %v, want native QUIC only", tr)
	}
	r := hearth(t, nil, "", "bench", "--dir", dir, "media", "--file-size", "0")
	if r.code == 0 || !strings.Contains(r.stderr, "file size") {
		t.Errorf("--file-size 0: exit %d, stderr %q", r.code, r.stderr)
	}

	// A file over the 1 MiB threshold goes over --connections connections
	// of each device: the extra sessions show in the report.
	one := num(t, rep, "sessions_by_transport.quic")
	par := benchJSON(t, dir, "--transport", "quic", "--via", "loss=2%,rtt=20ms,seed=18", "media", "--file-size", "1200000", "--files", "1", "--connections", "3")
	if f, e := num(t, par, "media.files"), num(t, par, "send_errors"); f != 1 || e != 0 {
		t.Errorf("--connections 3: media files %v, errors %v; want 1, 0", f, e)
	}
	if c := num(t, par, "params.connections"); c != 3 {
		t.Errorf("params.connections %v, want 3", c)
	}
	// The upload has 5 parts and the download 5 ranges of 256 KiB: 2
	// extra sessions each.
	if n := num(t, par, "sessions_by_transport.quic"); n < one+4 {
		t.Errorf("--connections 3 opened %v sessions, files of 300 kB took %v: want 4 more at least", n, one)
	}
	r = hearth(t, nil, "", "bench", "--dir", dir, "media", "--connections", "0")
	if r.code == 0 || !strings.Contains(r.stderr, "--connections") {
		t.Errorf("--connections 0: exit %d, stderr %q", r.code, r.stderr)
	}
}
