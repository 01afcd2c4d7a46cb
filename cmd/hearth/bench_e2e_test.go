package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// benchJSON runs `hearth bench --dir DIR --json ARGS…` and decodes the report.
func benchJSON(t *testing.T, dir string, args ...string) map[string]any {
	t.Helper()
	profiles := filepath.Join(t.TempDir(), "profiles")
	out := mustHearth(t, "", append([]string{"bench", "--dir", dir, "--json", "--profiles", profiles}, args...)...)
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench output is not one JSON object: %v\n%s", err, out)
	}
	return rep
}

// num returns the number at a dotted path of the report.
func num(t *testing.T, rep map[string]any, path string) float64 {
	t.Helper()
	var cur any = rep
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("report has no %s", path)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("report has no %s", path)
		}
	}
	f, ok := cur.(float64)
	if !ok {
		t.Fatalf("report field %s is %T, not a number", path, cur)
	}
	return f
}

// TestBenchPairsAndBacklog drives `hearth bench pairs`, `group` and `backlog` with
// tiny numbers against a real `hearth serve`: every acknowledged message is
// delivered exactly once, and the JSON report has the figures.
func TestBenchPairsAndBacklog(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	startServe(t, dir, nil, "--dir", dir)

	rep := benchJSON(t, dir, "pairs", "--users", "2", "--rate", "20", "--duration", "1s", "--size", "200")
	sent, acked, delivered := num(t, rep, "sent"), num(t, rep, "acked"), num(t, rep, "delivered")
	if sent < 10 || acked != sent || delivered != acked {
		t.Errorf("pairs: sent %v acked %v delivered %v: want about 20 sent, all acknowledged and delivered", sent, acked, delivered)
	}
	if l, d := num(t, rep, "lost"), num(t, rep, "duplicates"); l != 0 || d != 0 {
		t.Errorf("pairs: lost %v duplicates %v, want 0", l, d)
	}
	for _, f := range []string{"latency.p50_ms", "latency.p90_ms", "latency.p99_ms", "latency.p999_ms", "latency.max_ms",
		"sent_per_second", "acked_per_second", "delivered_per_second", "server.cpu_seconds", "server.rss_peak_mb", "bench.cpu_seconds"} {
		num(t, rep, f)
	}
	if n := num(t, rep, "latency.count"); n != delivered {
		t.Errorf("pairs: %v latencies for %v deliveries", n, delivered)
	}
	if p50, mx := num(t, rep, "latency.p50_ms"), num(t, rep, "latency.max_ms"); p50 <= 0 || mx < p50 {
		t.Errorf("pairs: latency p50 %v max %v", p50, mx)
	}
	if num(t, rep, "server.pid") <= 0 {
		t.Error("pairs: the server's PID was not found from hearth.lock")
	}

	// With receipts: every device acknowledges and reads what it gets;
	// the messages still arrive exactly once.
	rep = benchJSON(t, dir, "pairs", "--users", "2", "--rate", "20", "--duration", "1s", "--receipts")
	if a, d := num(t, rep, "acked"), num(t, rep, "delivered"); a < 10 || d != a || num(t, rep, "lost") != 0 || num(t, rep, "duplicates") != 0 {
		t.Errorf("pairs --receipts: acked %v delivered %v lost %v duplicates %v", a, d, num(t, rep, "lost"), num(t, rep, "duplicates"))
	}
	if p, _ := rep["params"].(map[string]any); p["receipts"] != true {
		t.Errorf("pairs --receipts: params %v do not say receipts", rep["params"])
	}

	// A group of full clients: every member joins from its Welcome and
	// decrypts every message of the two senders.
	rep = benchJSON(t, dir, "group", "--size", "3", "--senders", "2", "--rate", "20", "--duration", "1s")
	if a, d := num(t, rep, "acked"), num(t, rep, "delivered"); a < 10 || d != 2*a || num(t, rep, "lost") != 0 || num(t, rep, "duplicates") != 0 {
		t.Errorf("group: acked %v delivered %v lost %v duplicates %v, want every message at both other members once",
			a, d, num(t, rep, "lost"), num(t, rep, "duplicates"))
	}
	if n, a := num(t, rep, "fan_out_latency.count"), num(t, rep, "acked"); n != a {
		t.Errorf("group: %v fan-out latencies for %v messages", n, a)
	}
	if _, ok := rep["fan_out_from_server"]; ok {
		t.Error("group: full clients report fan_out_from_server, which only wire receivers measure")
	}

	rep = benchJSON(t, dir, "backlog", "--messages", "30", "--senders", "2")
	if a, d := num(t, rep, "acked"), num(t, rep, "delivered"); a != 30 || d != 30 {
		t.Errorf("backlog: acked %v delivered %v, want 30 and 30", a, d)
	}
	if l, d := num(t, rep, "lost"), num(t, rep, "duplicates"); l != 0 || d != 0 {
		t.Errorf("backlog: lost %v duplicates %v, want 0", l, d)
	}
	if num(t, rep, "backlog.store_per_second") <= 0 || num(t, rep, "backlog.drain_per_second") <= 0 || num(t, rep, "backlog.in_sync_seconds") <= 0 {
		t.Errorf("backlog: rates missing: %v", rep["backlog"])
	}
}
