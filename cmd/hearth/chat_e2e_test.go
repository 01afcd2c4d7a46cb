package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/keys/testutil"
)

// chatNet is one running homeserver (domain localhost) with users, for
// driving `hearth chat` as scripts do.
type chatNet struct {
	dir string
	srv *server
	ca  string
	// domain is the server's domain ("" means localhost).
	domain string
}

func newChatNet(t *testing.T, users ...string) *chatNet {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	n := &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir)
	for _, u := range users {
		mustHearth(t, password(u), "admin", "--dir", dir, "user", "add", u, "--password-stdin")
	}
	return n
}

// restart stops and starts the server on the same folder.
func (n *chatNet) restart(t *testing.T) {
	t.Helper()
	n.srv.stop(t, syscall.SIGTERM)
	n.srv = startServe(t, n.dir, nil, "--dir", n.dir)
}

// profile is one device's profile folder.
type profile struct {
	dir  string
	user string // local part
}

func newProfile(t *testing.T, user string) *profile {
	return &profile{dir: filepath.Join(t.TempDir(), user), user: user}
}

func (p *profile) chat(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return hearth(t, nil, stdin, append([]string{"chat", "--profile", p.dir}, args...)...)
}

func (p *profile) must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := p.chat(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("chat %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// loginArgs are the arguments of `chat login` for p on n.
func (p *profile) loginArgs(n *chatNet, extra ...string) []string {
	domain := n.domain
	if domain == "" {
		domain = "localhost"
	}
	return append([]string{"login", p.user + "@" + domain, "--server", n.srv.addr, "--ca", n.ca, "--password-stdin"}, extra...)
}

// password is the stdin that logs user in (and creates it).
func password(user string) string { return "pw-" + user + "-secret\n" }

// keyValues parses `key: value` lines.
func keyValues(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}

// linkDevice logs p in as a pending device and approves it from approver,
// as a user does: read the link code the new device prints, type it on
// the old one, and the new device's login finishes.
func linkDevice(t *testing.T, n *chatNet, p, approver *profile) {
	t.Helper()
	linkDeviceBy(t, n, p, func(code string) {
		if out := approver.must(t, "", "device", "approve", code); !strings.Contains(out, "approved: ") {
			t.Errorf("approve output %q", out)
		}
	})
}

// linkDeviceBy is linkDevice with the approval done by approve, given the
// link code the new device printed.
func linkDeviceBy(t *testing.T, n *chatNet, p *profile, approve func(code string)) {
	t.Helper()
	cmd := exec.Command(hearthBin, append([]string{"chat", "--profile", p.dir}, p.loginArgs(n)...)...)
	cmd.Stdin = strings.NewReader(password(p.user))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := bufio.NewScanner(stdout)
	var code string
	var rest []string
	for lines.Scan() {
		line := lines.Text()
		if v, ok := strings.CutPrefix(line, "link-code: "); ok {
			code = v
			break
		}
		rest = append(rest, line)
	}
	if code == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("pending login printed no link-code: %q\n%s", rest, stderr.String())
	}
	t.Logf("pending login: link code shown after %v", time.Since(start).Round(time.Millisecond))
	go func() {
		for lines.Scan() {
			rest = append(rest, lines.Text())
		}
		done <- cmd.Wait()
	}()
	approve(code)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pending login: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("pending login did not finish after approval:\n%s", stderr.String())
	}
	if !strings.Contains(strings.Join(rest, "\n"), "status: active") {
		t.Fatalf("linked device output %q", rest)
	}
}

type deviceLine struct {
	Device string `json:"device"`
	Status string `json:"status"`
	Listed bool   `json:"listed"`
	This   bool   `json:"this"`
}

func devices(t *testing.T, p *profile) []deviceLine {
	t.Helper()
	var out []deviceLine
	for _, line := range strings.Split(strings.TrimSpace(p.must(t, "", "device", "list", "--json")), "\n") {
		var d deviceLine
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("device list line %q: %v", line, err)
		}
		out = append(out, d)
	}
	return out
}

// TestChatLoginLinkRevoke drives first-device login, device linking by
// link code, listing and revocation through the real binary.
func TestChatLoginLinkRevoke(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice")
	a1, a2 := newProfile(t, "alice"), newProfile(t, "alice")

	r := a1.chat(t, password("alice"), a1.loginArgs(n)...)
	kv := keyValues(r.stdout)
	if r.code != 0 || !strings.HasPrefix(kv["recovery-key"], "HRK1-") || kv["status"] != "active" || kv["device"] == "" {
		t.Fatalf("first login: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, kv["recovery-key"]) {
		t.Error("recovery key printed to stderr")
	}
	// The recovery key is shown once: it is not in any later output.
	if r := a1.chat(t, password("alice"), a1.loginArgs(n)...); r.code == 0 || !strings.Contains(r.stderr, "already logged in") {
		t.Errorf("second login on the same profile: exit %d, %s", r.code, r.stderr)
	}

	// A wrong password is refused cleanly and leaves the profile usable for a real login.
	bad := newProfile(t, "alice")
	if r := bad.chat(t, "wrong\n", bad.loginArgs(n)...); r.code == 0 || !strings.Contains(r.stderr, "hearth:") {
		t.Errorf("wrong password: exit %d, %q", r.code, r.stderr)
	}

	linkDevice(t, n, a2, a1)
	devs := devices(t, a2)
	if len(devs) != 2 {
		t.Fatalf("devices = %+v", devs)
	}
	var a1ID string
	for _, d := range devs {
		if d.Status != "active" || !d.Listed {
			t.Errorf("device %+v not active and listed", d)
		}
		if !d.This {
			a1ID = d.Device
		}
	}

	// A wrong link code is refused.
	if r := a1.chat(t, "", "device", "approve", "ABCD-AAAAAAAA"); r.code == 0 {
		t.Error("approving an unknown link code succeeded")
	}

	out := a2.must(t, "", "device", "revoke", a1ID)
	if !strings.Contains(out, "revoked: "+a1ID) {
		t.Errorf("revoke output %q", out)
	}
	r = a1.chat(t, "", "device", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "revoked") {
		t.Errorf("revoked device still works: exit %d, %s", r.code, r.stderr)
	}
	for _, d := range devices(t, a2) {
		if d.Device == a1ID && (d.Listed || d.Status != "revoked") {
			t.Errorf("revoked device listed as %+v", d)
		}
	}
}

// TestChatRecoveryKeyLogin: a new device with the recovery key approves
// itself, without another device.
func TestChatRecoveryKeyLogin(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice")
	a1, a2 := newProfile(t, "alice"), newProfile(t, "alice")
	kv := keyValues(a1.must(t, password("alice"), a1.loginArgs(n)...))
	keyFile := filepath.Join(t.TempDir(), "recovery")
	if err := os.WriteFile(keyFile, []byte(kv["recovery-key"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := a2.must(t, password("alice"), a2.loginArgs(n, "--recovery-key-file", keyFile)...)
	if kv := keyValues(out); kv["status"] != "active" || kv["link-code"] != "" || kv["recovery-key"] != "" {
		t.Fatalf("recovery login output %q", out)
	}
	if devs := devices(t, a1); len(devs) != 2 || !devs[0].Listed || !devs[1].Listed {
		t.Fatalf("devices after recovery login: %+v", devs)
	}
	// A wrong recovery key is refused.
	a3 := newProfile(t, "alice")
	os.WriteFile(keyFile, []byte("HRK1-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA\n"), 0o600)
	if r := a3.chat(t, password("alice"), a3.loginArgs(n, "--recovery-key-file", keyFile)...); r.code == 0 {
		t.Errorf("login with a wrong recovery key succeeded: %s", r.stdout)
	}
}

type chatMsg struct {
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	From         string `json:"from"`
	Text         string `json:"text"`
	SentAt       string `json:"sent_at"`
	Seq          uint64 `json:"seq"`
}

func parseMsgs(t *testing.T, out string) []chatMsg {
	t.Helper()
	var msgs []chatMsg
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m chatMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("message line %q: %v", line, err)
		}
		if m.ID == "" || m.Conversation == "" || m.From == "" || m.SentAt == "" || m.Seq == 0 {
			t.Fatalf("message line %q lacks fields", line)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func texts(msgs []chatMsg) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.From+":"+m.Text)
	}
	return out
}

// expectRecv runs recv --json on p and checks exactly want arrived, in order.
func expectRecv(t *testing.T, p *profile, want ...string) []chatMsg {
	t.Helper()
	msgs := parseMsgs(t, p.must(t, "", "recv", "--json", "--timeout", "3s"))
	if got := strings.Join(texts(msgs), " | "); got != strings.Join(want, " | ") {
		t.Fatalf("%s recv = %q, want %q", p.dir, got, strings.Join(want, " | "))
	}
	return msgs
}

// freePort returns a TCP and UDP port free on 127.0.0.1 right now, so that
// the server keeps its address across restarts.
func freePort(t *testing.T) string {
	t.Helper()
	// Below the kernel's ephemeral range: a server restarted on this port
	// must not find it taken by some client's socket bound to port 0
	// meanwhile ("address already in use" on restart).
	lo := ephemeralLow() - 1
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", fixedPortMin+mathrand.IntN(lo-fixedPortMin))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		if u, err := net.ListenPacket("udp", addr); err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// fixedPortMin is the lowest port freePort picks.
const fixedPortMin = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (the
// ports that binding port 0 hands out); Linux's default when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= fixedPortMin+1000 {
		return 32768
	}
	return n
}

// newMessagingNet starts a server on a fixed port (so that profiles keep a
// valid address across restarts) with alice and bob logged in once each.
func newMessagingNet(t *testing.T) (n *chatNet, a1, b1 *profile) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", freePort(t))
	n = &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir)
	for _, u := range []string{"alice", "bob"} {
		mustHearth(t, password(u), "admin", "--dir", dir, "user", "add", u, "--password-stdin")
	}
	a1, b1 = newProfile(t, "alice"), newProfile(t, "bob")
	a1.must(t, password("alice"), a1.loginArgs(n)...)
	b1.must(t, password("bob"), b1.loginArgs(n)...)
	return n, a1, b1
}

const aliceAddr, bobAddr = "alice@localhost", "bob@localhost"

// sameHistory checks every profile holds the same conversation (with the
// peer given for each), each message once, in conversation order, and
// returns its length.
func sameHistory(t *testing.T, profiles []*profile, peers []string) int {
	t.Helper()
	var want []string
	for i, p := range profiles {
		h := parseMsgs(t, p.must(t, "", "history", peers[i], "--json"))
		var ids []string
		var last uint64
		seen := map[string]bool{}
		for _, m := range h {
			if m.Seq <= last || seen[m.ID] {
				t.Fatalf("%s history out of order or repeated at %+v", p.dir, m)
			}
			last, seen[m.ID] = m.Seq, true
			ids = append(ids, m.ID)
		}
		if i == 0 {
			want = ids
		} else if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("%s history %v differs from %v", p.dir, ids, want)
		}
	}
	return len(want)
}

// TestChatTwoUsersE2E: alice and bob exchange messages online and
// offline, through a server restart, with the real binary.
func TestChatTwoUsersE2E(t *testing.T) {
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	a1.must(t, "", "send", bobAddr, "hello bob")
	expectRecv(t, b1, aliceAddr+":hello bob")
	b1.must(t, "", "send", aliceAddr, "hi alice")
	expectRecv(t, a1, bobAddr+":hi alice")

	for _, m := range []string{"one", "two", "three"} { // bob not running
		a1.must(t, "", "send", bobAddr, m)
	}
	expectRecv(t, b1, aliceAddr+":one", aliceAddr+":two", aliceAddr+":three")

	n.srv.stop(t, syscall.SIGTERM)
	r := a1.chat(t, "", "send", bobAddr, "queued while down", "--timeout", "2s")
	if r.code == 0 || !strings.Contains(r.stderr, "queued") {
		t.Fatalf("send with the server down: exit %d, %s", r.code, r.stderr)
	}
	waiting := exec.Command(hearthBin, "chat", "--profile", b1.dir, "--verbose", "send", aliceAddr, "sent across a restart", "--timeout", "60s")
	wout := &lockedBuffer{}
	waiting.Stdout, waiting.Stderr = wout, wout
	if err := waiting.Start(); err != nil {
		t.Fatal(err)
	}
	// The send has found the server down (its --verbose log says so) and retries.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if !strings.Contains(wout.String(), "connection lost") {
			return fmt.Errorf("the waiting send has not yet failed to reach the stopped server:\n%s", wout.String())
		}
		return nil
	})
	n.srv = startServe(t, n.dir, nil, "--dir", n.dir)
	if err := waiting.Wait(); err != nil {
		t.Fatalf("send across a restart: %v\n%s", err, wout.String())
	}
	expectRecv(t, a1, bobAddr+":sent across a restart") // also flushes alice's queued message
	expectRecv(t, b1, aliceAddr+":queued while down")
	expectRecv(t, b1)
	if got := sameHistory(t, []*profile{a1, b1}, []string{bobAddr, aliceAddr}); got != 7 {
		t.Fatalf("history has %d messages, want 7", got)
	}
	// By conversation id, and the last N.
	all := parseMsgs(t, a1.must(t, "", "history", bobAddr, "--json"))
	last2 := parseMsgs(t, b1.must(t, "", "history", all[0].Conversation, "--json", "--limit", "2"))
	if len(last2) != 2 || last2[0].ID != all[5].ID || last2[1].ID != all[6].ID {
		t.Fatalf("history by id --limit 2 = %+v", last2)
	}
	if r := b1.chat(t, "", "history", bobAddr, "--limit", "-1"); r.code == 0 {
		t.Error("negative --limit accepted")
	}
}

// TestChatMessagingE2E: alice with two devices and bob with one; every
// device sees every message exactly once, in conversation order, and
// alice's other device receives what she sends.
func TestChatMessagingE2E(t *testing.T) {
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	a2 := newProfile(t, "alice")
	linkDevice(t, n, a2, a1)

	a1.must(t, "", "send", bobAddr, "hello bob")
	expectRecv(t, b1, aliceAddr+":hello bob")
	expectRecv(t, a2, aliceAddr+":hello bob")
	b1.must(t, "", "send", aliceAddr, "hi alice")
	expectRecv(t, a1, bobAddr+":hi alice")
	expectRecv(t, a2, bobAddr+":hi alice")
	a2.must(t, "", "send", bobAddr, "from the phone")
	expectRecv(t, b1, aliceAddr+":from the phone")
	expectRecv(t, a1, aliceAddr+":from the phone")

	for _, m := range []string{"one", "two"} { // bob and a2 not running
		a1.must(t, "", "send", bobAddr, m)
	}
	n.restart(t)
	expectRecv(t, b1, aliceAddr+":one", aliceAddr+":two")
	expectRecv(t, a2, aliceAddr+":one", aliceAddr+":two")
	expectRecv(t, a1)
	if got := sameHistory(t, []*profile{a1, a2, b1}, []string{bobAddr, bobAddr, aliceAddr}); got != 5 {
		t.Fatalf("history has %d messages, want 5", got)
	}
}

// follower is a running `recv --follow --json`.
type follower struct {
	cmd   *exec.Cmd
	lines chan chatMsg
	done  chan error
	// stderr is what the process wrote there; read it after done.
	stderr *bytes.Buffer
}

func follow(t *testing.T, p *profile) *follower { return followArgs(t, p) }

// followArgs is follow with chat flags added (e.g. --stats).
func followArgs(t *testing.T, p *profile, chatFlags ...string) *follower {
	t.Helper()
	f := &follower{lines: make(chan chatMsg, 100), done: make(chan error, 1), stderr: &bytes.Buffer{}}
	args := append(append([]string{"chat", "--profile", p.dir}, chatFlags...), "recv", "--follow", "--json")
	f.cmd = exec.Command(hearthBin, args...)
	f.cmd.Stderr = f.stderr
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m chatMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("follow printed %q: %v", sc.Text(), err)
				continue
			}
			f.lines <- m
		}
		f.done <- f.cmd.Wait()
		close(f.lines)
	}()
	t.Cleanup(func() { f.cmd.Process.Kill() })
	return f
}

// next returns the next printed message, failing after a minute.
func (f *follower) next(t *testing.T) chatMsg {
	t.Helper()
	select {
	case m, ok := <-f.lines:
		if !ok {
			t.Fatal("recv --follow ended")
		}
		return m
	case <-time.After(60 * time.Second):
		t.Fatal("recv --follow printed nothing for a minute")
		return chatMsg{}
	}
}

// TestChatFollowAndKilledSends: `recv --follow` and `send` share a profile;
// sends killed at random points are delivered exactly once by a later run.
func TestChatFollowAndKilledSends(t *testing.T) {
	skipShort(t)
	_, a1, b1 := newMessagingNet(t)
	f := follow(t, b1)
	a1.must(t, "", "send", bobAddr, "first")
	if m := f.next(t); m.Text != "first" || m.From != aliceAddr {
		t.Fatalf("follow printed %+v", m)
	}
	b1.must(t, "", "send", aliceAddr, "reply while following") // same profile as the follower
	expectRecv(t, a1, bobAddr+":reply while following")

	// Kill sends at different moments: before, during and after the server saw them.
	for i := range 8 {
		cmd := exec.Command(hearthBin, "chat", "--profile", a1.dir, "send", bobAddr, fmt.Sprintf("killed %d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+i*60) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	a1.must(t, "", "recv", "--timeout", "1s") // a later run flushes the outbox
	hist := parseMsgs(t, a1.must(t, "", "history", bobAddr, "--json"))
	var want []string
	for _, m := range hist {
		if strings.HasPrefix(m.Text, "killed ") {
			want = append(want, m.ID)
		}
	}
	var got []string
	for len(got) < len(want) {
		if m := f.next(t); strings.HasPrefix(m.Text, "killed ") {
			got = append(got, m.ID)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("bob got %v, alice's history has %v", got, want)
	}
	// Nothing more arrives (no duplicate): a message sent after all of them
	// is the next one bob prints. And every queued message was sent.
	a1.must(t, "", "send", bobAddr, "the last one")
	if m := f.next(t); m.Text != "the last one" {
		t.Fatalf("extra message %+v", m)
	}
	if out := a1.must(t, "", "history", bobAddr); strings.Count(out, "killed") != len(want) {
		t.Fatalf("history and delivered counts differ:\n%s", out)
	}
	f.cmd.Process.Signal(syscall.SIGINT)
	if err := <-f.done; err != nil {
		t.Fatalf("recv --follow after SIGINT: %v", err)
	}
	t.Logf("%d of 8 killed sends had been queued; each delivered once", len(want))
}
