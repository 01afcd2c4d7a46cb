package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads /metrics into name{labels} -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	rsp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != 200 {
		b, _ := io.ReadAll(rsp.Body)
		t.Fatalf("/metrics: %s\n%s", rsp.Status, b)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// TestMetricsE2E scrapes `hearth serve --metrics PORT` (a bare port:
// loopback) before and after traffic: the counters move with the messages
// sent, delivered and refused, the writer histograms with the commits,
// and `hearth admin status` shows the same figures.
func TestMetricsE2E(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	port := strings.Split(freePort(t), ":")[1]
	n := &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir, "--metrics", port)
	addr := "127.0.0.1:" + port
	if !strings.Contains(n.srv.log(), "http://"+addr+"/metrics") {
		t.Fatalf("the server did not say it serves metrics on %s:\n%s", addr, n.srv.log())
	}
	for _, u := range []string{"alice", "bob"} {
		mustHearth(t, password(u), "admin", "--dir", dir, "user", "add", u, "--password-stdin")
	}
	a1, b1 := newProfile(t, "alice"), newProfile(t, "bob")
	a1.must(t, password("alice"), a1.loginArgs(n)...)
	b1.must(t, password("bob"), b1.loginArgs(n)...)

	before := scrape(t, addr)
	for _, k := range []string{"go_goroutines", "process_resident_memory_bytes", `hearth_sessions{transport="webtransport"}`,
		`hearth_sessions{transport="websocket"}`, "hearth_mailbox_backlog", "hearth_media_bytes", "hearth_federation_queue_envelopes",
		"hearth_storage_batch_requests_count", "hearth_storage_fsync_seconds_count", "hearth_storage_commit_seconds_count"} {
		if _, ok := before[k]; !ok {
			t.Errorf("/metrics has no %s", k)
		}
	}
	const sends = 3
	for i := range sends {
		a1.must(t, "", "send", bobAddr, fmt.Sprint("m", i))
	}
	backlog := scrape(t, addr)["hearth_mailbox_backlog"]
	if backlog < sends {
		t.Errorf("mailbox backlog %v with %d messages waiting for bob", backlog, sends)
	}
	if got := len(parseMsgs(t, b1.must(t, "", "recv", "--json", "--timeout", "1s"))); got != sends {
		t.Fatalf("bob received %d messages, want %d", got, sends)
	}
	// A refused request: a wrong password.
	bad := newProfile(t, "alice")
	if r := bad.chat(t, "wrong password\n", bad.loginArgs(n)...); r.code == 0 {
		t.Fatal("login with a wrong password succeeded")
	}
	after := scrape(t, addr)
	grew := func(k string, by float64) {
		t.Helper()
		if d := after[k] - before[k]; d < by {
			t.Errorf("%s went from %v to %v, want at least +%v", k, before[k], after[k], by)
		}
	}
	grew("hearth_messages_accepted_total", sends) // the conversation's commit counts too
	grew("hearth_messages_delivered_total", sends)
	grew("hearth_storage_batch_requests_count", sends)
	grew("hearth_storage_fsync_seconds_count", sends)
	grew("hearth_storage_transactions_total", sends)
	var refused float64
	for k, v := range after {
		if strings.HasPrefix(k, "hearth_requests_refused_total{") {
			refused += v - before[k]
		}
	}
	if refused < 1 {
		t.Errorf("refused requests did not grow with a wrong password")
	}
	if after["hearth_mailbox_backlog"] >= backlog {
		t.Errorf("mailbox backlog %v after bob received, %v before", after["hearth_mailbox_backlog"], backlog)
	}

	var st map[string]any
	if err := json.Unmarshal([]byte(mustHearth(t, "", "admin", "--dir", dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st["messages_accepted"].(float64) < sends || st["messages_delivered"].(float64) < sends || st["writer_batches"].(float64) < sends {
		t.Errorf("admin status %v", st)
	}
	if _, ok := st["sessions_by_transport"].(map[string]any); !ok {
		t.Errorf("admin status has no sessions_by_transport: %v", st)
	}
	text := mustHearth(t, "", "admin", "--dir", dir, "status")
	for _, k := range []string{"accepted:", "delivered:", "backlog:", "federation:", "media:", "writer:"} {
		if !strings.Contains(text, k) {
			t.Errorf("admin status text lacks %q:\n%s", k, text)
		}
	}
}
