package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// followSignals runs `recv --follow --json --signals` and returns its
// printed objects.
func followSignals(t *testing.T, p *profile) <-chan map[string]any {
	t.Helper()
	cmd := exec.Command(hearthBin, "chat", "--profile", p.dir, "recv", "--follow", "--json", "--signals")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan map[string]any, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("recv --signals printed %q: %v", sc.Text(), err)
				continue
			}
			lines <- m
		}
	}()
	return lines
}

// await returns the first object for which match is true, skipping others.
func await(t *testing.T, lines <-chan map[string]any, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("recv ended before %s", what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within a minute", what)
		}
	}
}

// TestTypingAndPresenceSignals: `chat typing` and `chat presence` reach a
// member following with `recv --follow --signals`, as JSON objects with
// "event"; unknown targets and states are refused.
func TestTypingAndPresenceSignals(t *testing.T) {
	skipShort(t)
	_, a1, b1 := newMessagingNet(t)
	a1.must(t, "", "send", bobAddr, "hello")
	expectRecv(t, b1, aliceAddr+":hello")
	lines := followSignals(t, b1)
	a1.must(t, "", "send", bobAddr, "ready")
	await(t, lines, "the message", func(m map[string]any) bool { return m["text"] == "ready" })

	a1.must(t, "", "typing", bobAddr)
	m := await(t, lines, "a typing event", func(m map[string]any) bool { return m["event"] == "typing" })
	if m["user"] != aliceAddr || m["typing"] != true || !strings.Contains(m["conversation"].(string), "@localhost") {
		t.Fatalf("typing event %v", m)
	}
	a1.must(t, "", "typing", bobAddr, "--stop")
	if m := await(t, lines, "a stopped-typing event", func(m map[string]any) bool { return m["event"] == "typing" }); m["typing"] != false {
		t.Fatalf("stopped-typing event %v", m)
	}
	a1.must(t, "", "presence", "away")
	await(t, lines, "alice away", func(m map[string]any) bool {
		return m["event"] == "presence" && m["user"] == aliceAddr && m["state"] == "away"
	})

	if r := a1.chat(t, "", "typing", "nobody@localhost"); r.code == 0 || !strings.Contains(r.stderr, "no conversation") {
		t.Fatalf("typing to a stranger: exit %d, %q", r.code, r.stderr)
	}
	if r := a1.chat(t, "", "presence", "dancing"); r.code == 0 || !strings.Contains(r.stderr, "online, away or offline") {
		t.Fatalf("presence dancing: exit %d, %q", r.code, r.stderr)
	}
}
