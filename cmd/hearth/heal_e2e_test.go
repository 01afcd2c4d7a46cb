package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chatWithin runs `hearth chat` on p and fails the test if the command has
// not ended by itself within limit: it is then sent SIGTERM, and SIGKILL 5 s
// later if SIGTERM did not end it either.
func (p *profile) chatWithin(t *testing.T, limit time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(hearthBin, append([]string{"chat", "--profile", p.dir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			t.Fatalf("chat %v did not end within %v (ended on SIGTERM)\nstderr: %s", args, limit, errb.String())
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("chat %v did not end within %v, nor on SIGTERM\nstderr: %s", args, limit, errb.String())
		}
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run hearth chat %v: %v", args, err)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("hearth chat %v printed a stack trace:\n%s", args, r.stderr)
	}
	return r
}

// outboxLine is one line of `chat outbox list --json`.
type outboxLine struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Text   string `json:"text"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func outbox(t *testing.T, p *profile) []outboxLine {
	t.Helper()
	var out []outboxLine
	for _, line := range strings.Split(strings.TrimSpace(p.must(t, "", "outbox", "list", "--json")), "\n") {
		if line == "" {
			continue
		}
		var o outboxLine
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("outbox line %q: %v", line, err)
		}
		out = append(out, o)
	}
	return out
}

// TestRemovedMemberSendFails is case 1 of "conversations never break": u3
// is removed from a group before it has seen the removal and sends to the
// group. The send must fail with a clear error (not print an id and exit
// 0), the message must be kept as failed (not lost), and later commands on
// u3's profile must end on their own.
func TestRemovedMemberSendFails(t *testing.T) {
	parallelE2E(t)
	n := newChatNet(t, "u1", "u2", "u3")
	ps := map[string]*profile{}
	for _, u := range []string{"u1", "u2", "u3"} {
		ps[u] = newProfile(t, u)
		ps[u].must(t, password(u), ps[u].loginArgs(n)...)
		ps[u].must(t, "", "recv", "--timeout", "1s")
	}
	out := strings.Split(strings.TrimSpace(ps["u1"].must(t, "", "group", "create", "team", "--members", "u2@localhost,u3@localhost")), "\n")
	id := out[len(out)-1]
	ps["u2"].must(t, "", "recv", "--timeout", "1s")
	ps["u3"].must(t, "", "recv", "--timeout", "1s")
	ps["u1"].must(t, "", "group", "remove", id, "u3@localhost")

	r := ps["u3"].chatWithin(t, 40*time.Second, "send", id, "sent after removal")
	if r.code == 0 || !strings.Contains(r.stderr, "no longer a member") {
		t.Fatalf("send by a removed member: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "id: ") {
		t.Errorf("a send that failed printed an id: %q", r.stdout)
	}
	// The profile still works: recv and a send to someone else end.
	r = ps["u3"].chatWithin(t, 20*time.Second, "recv", "--timeout", "1s")
	if r.code != 0 {
		t.Fatalf("recv after the failed send: exit %d\nstderr: %s", r.code, r.stderr)
	}
	ps["u3"].must(t, "", "send", "u2@localhost", "still here")
	expectRecvContains(t, ps["u2"], "still here")
}

// expectRecvContains runs recv on p until a message with text arrives.
func expectRecvContains(t *testing.T, p *profile, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		r := p.chatWithin(t, 30*time.Second, "recv", "--json", "--timeout", "2s")
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var m struct {
				Text string `json:"text"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Text != "" {
				if m.Text == text {
					return
				}
				got = append(got, m.Text)
			}
		}
	}
	t.Fatalf("%s never received %q (got %q)", p.dir, text, got)
}

// TestMistypedRecipientBlocksNothing is case 3: a message to a user of a
// domain that does not exist fails with a clear error, is kept as failed
// and listed, and never delays messages to anyone else; it can be dropped
// or retried.
func TestMistypedRecipientBlocksNothing(t *testing.T) {
	skipShort(t)
	_, alice, bob := newMessagingNet(t)
	bob.must(t, "", "recv", "--timeout", "1s")
	start := time.Now()
	r := alice.chatWithin(t, 45*time.Second, "send", "bob@nowhere.invalid", "typo")
	if r.code == 0 || !strings.Contains(r.stderr, "nowhere.invalid") {
		t.Fatalf("send to an unknown domain: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("send to an unknown domain failed in %v: %s", time.Since(start), strings.TrimSpace(r.stderr))
	// The server answers for good that the domain has no Hearth server
	// (.invalid never resolves, RFC 6761): the message is failed at once,
	// not left queued.
	if strings.Contains(r.stderr, "stays queued") || !strings.Contains(r.stderr, "kept as failed") {
		t.Fatalf("send to an unknown domain was not failed for good: %s", r.stderr)
	}
	r = alice.chatWithin(t, 45*time.Second, "send", "nobody@localhost", "no such user")
	if r.code == 0 || !strings.Contains(r.stderr, "nobody@localhost") {
		t.Fatalf("send to an unknown user: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for i := range 3 {
		begin := time.Now()
		alice.must(t, "", "send", bobAddr, "hello "+string(rune('a'+i)))
		if d := time.Since(begin); d > 10*time.Second {
			t.Errorf("send to bob took %v after a failed send", d)
		}
	}
	expectRecv(t, bob, aliceAddr+":hello a", aliceAddr+":hello b", aliceAddr+":hello c")

	ob := outbox(t, alice)
	if len(ob) != 2 {
		t.Fatalf("outbox = %+v, want the two failed messages", ob)
	}
	for _, o := range ob {
		if o.State != "failed" || o.Reason == "" {
			t.Errorf("outbox item %+v, want failed with a reason", o)
		}
	}
	// Retry fails again (the domain still does not exist) and keeps it;
	// drop removes it.
	if r := alice.chatWithin(t, 45*time.Second, "outbox", "retry", ob[0].ID); r.code == 0 {
		t.Errorf("retry of a message to a missing domain succeeded: %s", r.stdout)
	}
	alice.must(t, "", "outbox", "drop", ob[0].ID)
	alice.must(t, "", "outbox", "drop", ob[1].ID)
	if ob := outbox(t, alice); len(ob) != 0 {
		t.Fatalf("outbox after drop = %+v", ob)
	}
	if r := alice.chat(t, "", "outbox", "drop", "nosuchid"); r.code == 0 {
		t.Errorf("drop of an unknown id exited 0")
	}
}

// TestRecvEndsWhenServerDown: `recv --timeout 1s` with the server stopped
// returns within 2 s (a server it cannot reach is silence: the whole
// command honours --timeout), exits non-zero saying so, and mentions
// queued messages only when some are queued.
func TestRecvEndsWhenServerDown(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob")
	alice := newProfile(t, "alice")
	alice.must(t, password("alice"), alice.loginArgs(n)...)
	n.srv.stop(t, syscall.SIGTERM)
	start := time.Now()
	r := alice.chatWithin(t, 20*time.Second, "recv", "--timeout", "1s")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("recv --timeout 1s with the server down took %v, want < 2s", took)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "could not reach the server within 1s; nothing received") {
		t.Fatalf("recv with the server down: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "queued") {
		t.Errorf("recv warned about queued messages with none queued: %s", r.stderr)
	}
	if r := alice.chatWithin(t, 20*time.Second, "send", "bob@localhost", "queued while down", "--timeout", "500ms"); r.code == 0 {
		t.Fatalf("send with the server down exited 0: %s", r.stdout)
	}
	r = alice.chatWithin(t, 20*time.Second, "recv", "--timeout", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "1 message not sent yet, still queued (chat outbox list)") {
		t.Errorf("recv with one message queued and the server down: exit %d\nstderr: %s", r.code, r.stderr)
	}
}
