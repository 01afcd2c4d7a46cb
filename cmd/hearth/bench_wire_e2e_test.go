package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchWire drives `hearth bench pairs|group|backlog|idle --wire` with
// small numbers against a real `hearth serve`: the conversations are set up
// by real clients (a group's members but its creator only log in), then
// bare wire sessions send captured ciphertexts and
// receivers match arrivals by message id alone (foreign = 0: every
// delivery after the set-up was a bench message id). Every acknowledged
// message arrives exactly once, in order, and the report has the server's
// stage histograms and both processes' CPU per message.
func TestBenchWire(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)

	rep := benchJSON(t, dir, "pairs", "--wire", "--users", "2", "--rate", "20", "--duration", "1s", "--size", "200")
	if w, _ := rep["params"].(map[string]any)["wire"].(bool); !w {
		t.Errorf("pairs: params.wire is not true: %v", rep["params"])
	}
	sent, acked, delivered := num(t, rep, "sent"), num(t, rep, "acked"), num(t, rep, "delivered")
	if sent < 10 || acked != sent || delivered != acked {
		t.Errorf("pairs: sent %v acked %v delivered %v: want about 20 sent, all acknowledged and delivered", sent, acked, delivered)
	}
	for _, f := range []string{"lost", "duplicates", "out_of_order", "foreign", "unacked", "send_errors"} {
		if n := num(t, rep, f); n != 0 {
			t.Errorf("pairs: %s = %v, want 0", f, n)
		}
	}
	if n := num(t, rep, "latency.count"); n != delivered {
		t.Errorf("pairs: %v latencies for %v deliveries", n, delivered)
	}
	if n := num(t, rep, "server_stages.receive_to_commit.count"); n < acked {
		t.Errorf("pairs: the server timed %v sends to their commit, want at least the %v acknowledged", n, acked)
	}
	if n := num(t, rep, "server_stages.commit_to_push.count") + num(t, rep, "server_stages.receive_to_push_read.count"); n < delivered {
		t.Errorf("pairs: the server timed %v pushes, want at least the %v delivered", n, delivered)
	}
	if p, mx := num(t, rep, "server_stages.receive_to_commit.p50_ms"), num(t, rep, "server_stages.receive_to_commit.max_ms"); p <= 0 || mx < p {
		t.Errorf("pairs: receive→commit p50 %v max %v", p, mx)
	}
	// The wait for the writer is a part of receive → commit, message by
	// message: counted as often, and no later in the same buckets.
	if n, c := num(t, rep, "server_stages.receive_to_writer.count"), num(t, rep, "server_stages.receive_to_commit.count"); n != c {
		t.Errorf("pairs: the server timed %v sends to the writer and %v to their commit", n, c)
	}
	if w, c := num(t, rep, "server_stages.receive_to_writer.max_ms"), num(t, rep, "server_stages.receive_to_commit.max_ms"); w > c {
		t.Errorf("pairs: receive→writer max %v past receive→commit max %v", w, c)
	}
	if n := num(t, rep, "server_stages.writer_fsync.count"); n <= 0 {
		t.Errorf("pairs: %v writer transactions timed, want some", n)
	}
	if s, b := num(t, rep, "cpu_per_message.server_ms"), num(t, rep, "cpu_per_message.bench_ms"); s < 0 || b <= 0 {
		t.Errorf("pairs: CPU per message server %v bench %v", s, b)
	}
	// The two parts of the latency the run can tell apart: the load
	// generator's own lateness (one per message queued) and the server's
	// acceptance → the receiver (one per delivery; whole milliseconds
	// stamped by the server, so up to 1 ms more than the true figure).
	if n := num(t, rep, "send_lateness.count"); n != sent {
		t.Errorf("pairs: %v lateness figures for %v messages sent", n, sent)
	}
	if n := num(t, rep, "server_latency.count"); n != delivered {
		t.Errorf("pairs: %v server → device latencies for %v deliveries", n, delivered)
	}
	if s, l := num(t, rep, "server_latency.max_ms"), num(t, rep, "latency.max_ms"); s <= 0 || s > l+1 {
		t.Errorf("pairs: server → device max %v ms, end to end max %v ms", s, l)
	}

	// A group of 40: 39 members log in and go wire at once, the creator's
	// client adds them all and seals the message the two senders replay;
	// every acknowledged message must reach all 39 other members once.
	const members = 40
	rep = benchJSON(t, dir, "group", "--wire", "--size", fmt.Sprint(members), "--senders", "2", "--rate", "20", "--duration", "1s")
	acked, delivered = num(t, rep, "acked"), num(t, rep, "delivered")
	if acked < 10 || delivered != (members-1)*acked {
		t.Errorf("group: acked %v delivered %v, want every message at all %d other members", acked, delivered, members-1)
	}
	for _, f := range []string{"lost", "duplicates", "out_of_order", "unacked", "foreign", "send_errors"} {
		if n := num(t, rep, f); n != 0 {
			t.Errorf("group: %s = %v, want 0", f, n)
		}
	}
	for _, f := range []string{"fan_out_latency.count", "fan_out_from_server.count"} {
		if n := num(t, rep, f); n != acked {
			t.Errorf("group: %s %v for %v messages", f, n, acked)
		}
	}
	if n := num(t, rep, "server_latency.count"); n != delivered {
		t.Errorf("group: %v latencies from the server's acceptance for %v deliveries", n, delivered)
	}
	if p50, f50 := num(t, rep, "server_latency.p50_ms"), num(t, rep, "fan_out_from_server.p50_ms"); p50 <= 0 || f50 < p50 {
		t.Errorf("group: from the server's acceptance: per delivery p50 %v ms, to the last member p50 %v ms", p50, f50)
	}
	if n := num(t, rep, "server_stages.commit_to_push.count") + num(t, rep, "server_stages.receive_to_push_read.count"); n < delivered {
		t.Errorf("group: the server timed %v pushes, want at least the %v delivered", n, delivered)
	}
	if notes := fmt.Sprint(rep["notes"]); !strings.Contains(notes, fmt.Sprintf("all %d other members", members-1)) {
		t.Errorf("group: notes do not say the set-up message reached every member: %s", notes)
	}

	rep = benchJSON(t, dir, "backlog", "--wire", "--messages", "30", "--senders", "2")
	if a, d := num(t, rep, "acked"), num(t, rep, "delivered"); a != 30 || d != 30 {
		t.Errorf("backlog: acked %v delivered %v, want 30 and 30", a, d)
	}
	for _, f := range []string{"lost", "duplicates", "out_of_order", "foreign"} {
		if n := num(t, rep, f); n != 0 {
			t.Errorf("backlog: %s = %v, want 0", f, n)
		}
	}
	if n := num(t, rep, "server_stages.receive_to_push_read.count"); n < 30 {
		t.Errorf("backlog: %v pushes read back from the mailbox, want the 30 stored while offline", n)
	}

	rep = benchJSON(t, dir, "idle", "--wire", "--sessions", "3", "--hold", "1s", "--ramp", "50")
	if n := num(t, rep, "idle.online_sessions_seen"); n != 3 {
		t.Errorf("idle: server saw %v sessions online, want 3", n)
	}

	// Wire receivers send no receipts: --receipts with --wire is refused.
	r := hearth(t, nil, "", "bench", "--dir", dir, "--profiles", filepath.Join(t.TempDir(), "profiles"),
		"pairs", "--wire", "--receipts", "--users", "2", "--rate", "20", "--duration", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "--receipts and --wire") {
		t.Errorf("pairs --wire --receipts: exit %d, stderr %q", r.code, r.stderr)
	}
}
