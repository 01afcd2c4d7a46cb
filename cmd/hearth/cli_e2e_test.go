package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests of this file drive what a daily user meets (issue 14, "The
// CLI, fixed where it surprised") through the real binary.

// noGoChain fails if a message meant for a person carries Go operation
// names ("client.Queue: ", "homeserver.Hello: ").
func noGoChain(t *testing.T, what, stderr string) {
	t.Helper()
	for _, op := range []string{"client.", "homeserver.", "client: ", "store: ", "wire."} {
		if strings.Contains(stderr, op) {
			t.Errorf("%s: error shows Go call chain %q: %s", what, op, stderr)
		}
	}
}

// TestChatSendStdinAndFiles: a 200 KiB text read from standard input
// arrives whole; whitespace-only text is refused like empty text and
// queues nothing; .txt and .html files send without --type, and the
// sha256 recv --json and media get show is the file's (sha256sum's).
func TestChatSendStdinAndFiles(t *testing.T) {
	skipShort(t)
	n, alice, bob := newMessagingNet(t)
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < 200<<10 {
		fmt.Fprintf(&b, "line %d <%x> & more\n", b.Len(), r.Uint64())
	}
	big := b.String()[:200<<10]
	if out := alice.must(t, big, "send", bobAddr, "-"); keyValues(out)["id"] == "" {
		t.Fatalf("send - printed %q", out)
	}
	for _, args := range [][]string{{"send", bobAddr, "-"}, {"send", bobAddr, "--stdin"}, {"send", bobAddr, " \t "}} {
		res := alice.chat(t, " \n\t \n", args...)
		if res.code == 0 || !strings.Contains(res.stderr, "the text is empty") || strings.Contains(res.stdout, "id:") {
			t.Errorf("%v with whitespace: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
		noGoChain(t, "empty text", res.stderr)
	}
	if out := alice.must(t, "", "outbox", "list", "--json"); strings.TrimSpace(out) != "" {
		t.Errorf("refused texts were queued: %s", out)
	}

	dir := t.TempDir()
	files := map[string]string{"notes.txt": "plain notes\n", "page.html": "<html><body>Hi & bye</body></html>\n"}
	types := map[string]string{"notes.txt": "text/plain", "page.html": "text/html"}
	ids := map[string]string{}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ids[keyValues(alice.must(t, "", "send", bobAddr, "--file", path))["id"]] = name
	}

	type recvMsg struct {
		ID   string `json:"id"`
		Text string `json:"text"`
		Raw  struct {
			SHA256     string `json:"sha256"`
			Ciphertext string `json:"ciphertext_sha256"`
			Type       string `json:"type"`
			Name       string `json:"name"`
		} `json:"media"`
	}
	got := 0
	for _, line := range strings.Split(strings.TrimSpace(bob.must(t, "", "recv", "--json", "--timeout", "2s")), "\n") {
		var m recvMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Text == big {
			got++
		}
		name, ok := ids[m.ID]
		if !ok {
			continue
		}
		got++
		want := fmt.Sprintf("%x", sha256.Sum256([]byte(files[name])))
		if m.Raw.SHA256 != want || len(m.Raw.Ciphertext) != 64 || m.Raw.Ciphertext == want || !strings.HasPrefix(m.Raw.Type, types[name]) || m.Raw.Name != name {
			t.Errorf("%s: media %+v, want sha256 %s and type %s", name, m.Raw, want, types[name])
		}
		kv := keyValues(bob.must(t, "", "media", "get", m.ID, "--out", filepath.Join(t.TempDir(), name)))
		if kv["sha256"] != want {
			t.Errorf("%s: media get printed sha256 %q, want %s", name, kv["sha256"], want)
		}
	}
	if got != 3 {
		t.Errorf("bob got %d of the 200 KiB text and the two files", got)
	}
	// The server started without users: it said what to do next.
	if log := n.srv.log(); !strings.Contains(log, "Next steps") || !strings.Contains(log, "user add alice --password-stdin") {
		t.Errorf("serve on first run printed no next steps:\n%s", log)
	}
	if strings.Contains(n.srv.log(), "level=ERROR") {
		t.Errorf("server logged an ERROR:\n%s", n.srv.log())
	}
}

// garbleFile overwrites path from byte off on with pseudo-random bytes.
func garbleFile(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(off), 9))
	for i := off; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestChatDamagedProfile: a truncated or garbled profile store gives one
// clear sentence naming the file and `chat doctor` (never a panic or a
// fault: hearth() fails on a stack trace), doctor says it is damaged, and
// doctor --repair moves it aside so that the profile can log in again.
func TestChatDamagedProfile(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob", "carol")
	for name, hurt := range map[string]func(path string){
		"truncated": func(path string) { os.Truncate(path, 3000) },
		"garbled":   func(path string) { garbleFile(t, path, 2*4096) },
	} {
		user := map[string]string{"truncated": "alice", "garbled": "carol"}[name] // each a first device
		p := newProfile(t, user)
		p.must(t, password(user), p.loginArgs(n)...)
		db := filepath.Join(p.dir, "hearth.db")
		hurt(db)
		for _, args := range [][]string{{"recv", "--timeout", "1s"}, {"send", bobAddr, "hi"}, {"history", bobAddr}, {"device", "list", "--timeout", "5s"}} {
			r := p.chat(t, "", args...)
			if r.code == 0 || !strings.Contains(r.stderr, "the profile store "+db+" is damaged") ||
				!strings.Contains(r.stderr, "hearth chat --profile "+p.dir+" doctor --repair") {
				t.Errorf("%s: %v: exit %d, stderr %q", name, args, r.code, r.stderr)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("%s: %v: more than one line: %q", name, args, r.stderr)
			}
		}
		if r := p.chat(t, "", "doctor"); r.code == 0 || keyValues(r.stdout)["status"] != "damaged" {
			t.Errorf("%s: doctor: exit %d, %q %q", name, r.code, r.stdout, r.stderr)
		}
		kv := keyValues(p.must(t, "", "doctor", "--repair"))
		if kv["status"] != "moved-aside" || !strings.HasPrefix(kv["damaged-file"], db+".damaged-") {
			t.Errorf("%s: doctor --repair printed %v", name, kv)
		}
		if _, err := os.Stat(kv["damaged-file"]); err != nil {
			t.Errorf("%s: damaged file not kept: %v", name, err)
		}
		if kv := keyValues(p.must(t, "", "doctor")); kv["status"] != "ok" {
			t.Errorf("%s: doctor after repair: %v", name, kv)
		}
	}
	sound := newProfile(t, "bob")
	sound.must(t, password("bob"), sound.loginArgs(n)...)
	if kv := keyValues(sound.must(t, "", "doctor")); kv["status"] != "ok" || !strings.HasPrefix(kv["account"], "bob@localhost, device ") {
		t.Errorf("doctor on a sound profile: %v", kv)
	}
}

// TestChatErrorsForPeople: each error a user can act on is one sentence
// with the right hint and no Go call chain (--verbose keeps the chain): a
// disabled account (an admin can re-enable it), a deleted account, a
// revoked device (whose send leaves nothing queued and prints no id), a
// changed identity key (safety-number, then trust), an approval timeout
// (the device stays pending; how to remove it). Login and the waiting
// device say what to do, and device list has a header.
func TestChatErrorsForPeople(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob", "carol", "erin")
	adm := func(args ...string) { mustHearth(t, "", append([]string{"admin", "--dir", n.dir}, args...)...) }
	alice, bob, carol, erin := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol"), newProfile(t, "erin")
	r := alice.chat(t, password("alice"), alice.loginArgs(n)...)
	if r.code != 0 || !strings.Contains(r.stderr, "keep this recovery key offline") || !strings.Contains(r.stderr, "it is shown once") {
		t.Fatalf("first login: exit %d, stderr %q", r.code, r.stderr)
	}
	recoveryFile := filepath.Join(t.TempDir(), "rk")
	os.WriteFile(recoveryFile, []byte(keyValues(r.stdout)["recovery-key"]), 0o600)
	for _, p := range []*profile{bob, carol, erin} {
		p.must(t, password(p.user), p.loginArgs(n)...)
	}
	alice.must(t, "", "send", "erin@localhost", "hi erin") // pins erin's identity key

	adm("user", "disable", "bob")
	r = bob.chat(t, "", "recv", "--timeout", "1s")
	if want := "hearth: this account is disabled on its server; an admin can enable it again (hearth admin user enable NAME), then this profile works again\n"; r.code == 0 || r.stderr != want {
		t.Errorf("disabled: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	if r := bob.chat(t, "", "recv", "--timeout", "1s", "--verbose"); !strings.Contains(r.stderr, "homeserver.checkAccessToken: account disabled") {
		t.Errorf("disabled --verbose hides the chain: %q", r.stderr)
	}
	adm("user", "enable", "bob")
	bob.must(t, "", "recv", "--timeout", "1s")

	adm("user", "delete", "carol")
	r = carol.chat(t, "", "recv", "--timeout", "1s")
	if !strings.HasPrefix(r.stderr, "hearth: this account was deleted from its server") || r.code == 0 {
		t.Errorf("deleted: exit %d, stderr %q", r.code, r.stderr)
	}

	// A changed identity key: erin's account is made anew.
	adm("user", "delete", "erin")
	mustHearth(t, password("erin"), "admin", "--dir", n.dir, "user", "add", "erin", "--password-stdin")
	erin2 := newProfile(t, "erin")
	erin2.must(t, password("erin"), erin2.loginArgs(n)...)
	r = alice.chat(t, "", "send", "erin@localhost", "are you still you?")
	if r.code == 0 || strings.Contains(r.stdout, "id:") || !strings.Contains(r.stderr, "erin@localhost's identity key changed") ||
		!strings.Contains(r.stderr, "hearth chat safety-number erin@localhost") || !strings.Contains(r.stderr, "hearth chat trust erin@localhost") {
		t.Errorf("changed key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	noGoChain(t, "changed key", r.stderr)
	failed := outbox(t, alice)
	if len(failed) != 1 || failed[0].State != "failed" {
		t.Fatalf("outbox after the refused send: %+v", failed)
	}
	sn := keyValues(alice.must(t, "", "safety-number", "erin@localhost"))
	theirs := keyValues(erin2.must(t, "", "safety-number", "alice@localhost"))
	if sn["new-safety-number"] == "" || sn["new-safety-number"] == sn["safety-number"] || theirs["safety-number"] != sn["new-safety-number"] {
		t.Fatalf("safety numbers: alice sees %v, erin sees %v", sn, theirs)
	}
	if r := alice.chat(t, "", "trust", "erin@localhost", "--safety-number", sn["safety-number"]); r.code == 0 {
		t.Errorf("trust with the old key's number accepted: %q", r.stdout)
	}
	if kv := keyValues(alice.must(t, "", "trust", "erin@localhost", "--safety-number", sn["new-safety-number"])); kv["trusted"] != "erin@localhost" {
		t.Errorf("trust printed %v", kv)
	}
	if kv := keyValues(alice.must(t, "", "safety-number", "erin@localhost")); kv["safety-number"] != theirs["safety-number"] || kv["new-safety-number"] != "" {
		t.Errorf("after trust: %v", kv)
	}
	alice.must(t, "", "outbox", "retry", failed[0].ID)
	expectRecv(t, erin2, "alice@localhost:are you still you?")

	// A device that nobody approves in time is removed from the server
	// and the profile logged out: the user's device list no longer shows
	// it, and the same login on the same profile starts afresh.
	pending := newProfile(t, "alice")
	r = pending.chat(t, password("alice"), pending.loginArgs(n, "--approval-timeout", "1s")...)
	dev, code := keyValues(r.stdout)["device"], keyValues(r.stdout)["link-code"]
	if want := "hearth: no device approved this one within 1s; its pending device " + dev + " was removed from the server and this profile logged out. " +
		"Run the same login again to start over\n"; r.code == 0 || dev == "" || !strings.Contains(r.stderr, "device approve "+code) || !strings.HasSuffix(r.stderr, want) {
		t.Errorf("approval timeout: exit %d, stdout %q, stderr %q, want it to end with %q", r.code, r.stdout, r.stderr, want)
	}
	noGoChain(t, "approval timeout", r.stderr)
	list := alice.must(t, "", "device", "list")
	if lines := strings.Split(list, "\n"); !strings.Contains(lines[0], "DEVICE") || !strings.Contains(lines[0], "STATUS") || strings.Contains(list, dev) {
		t.Errorf("device list still shows the timed-out device %s:\n%s", dev, list)
	}
	if r := alice.chat(t, "", "device", "approve", code, "--yes"); r.code == 0 {
		t.Errorf("the removed device's code was approved: %q", r.stdout)
	}
	code2, wait := startPendingLogin(t, pending, pending.loginArgs(n)...)
	if strings.HasPrefix(code2, strings.SplitN(code, "-", 2)[0]) {
		t.Errorf("the fresh login shows the old link code %s", code2)
	}
	if r := alice.chat(t, "", "device", "approve", code2, "--no-history"); r.code != 0 {
		t.Fatalf("approve the fresh login: exit %d\n%s", r.code, r.stderr)
	}
	wait()
	if list := alice.must(t, "", "device", "list"); strings.Contains(list, dev) || strings.Count(list, " active ") < 2 {
		t.Errorf("device list after the fresh login:\n%s", list)
	}

	// A revoked device's send fails before printing an id and queues nothing.
	laptop := newProfile(t, "alice")
	lid := keyValues(laptop.must(t, password("alice"), laptop.loginArgs(n, "--recovery-key-file", recoveryFile)...))["device"]
	alice.must(t, "", "device", "revoke", lid)
	r = laptop.chat(t, "", "send", bobAddr, "from a revoked laptop")
	if r.code == 0 || strings.Contains(r.stdout, "id:") || !strings.Contains(r.stderr, "this device was revoked") {
		t.Errorf("revoked send: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	noGoChain(t, "revoked send", r.stderr)
	if out := laptop.must(t, "", "outbox", "list", "--json"); strings.TrimSpace(out) != "" {
		t.Errorf("a revoked device queued: %s", out)
	}
	// Clients came and went all along: none of that is an error. (The
	// deleted accounts' devices leave a federation ERROR of their own.)
	if strings.Contains(n.srv.log(), `level=ERROR msg="request failed"`) {
		t.Errorf("server logged a request failure:\n%s", n.srv.log())
	}
}

// TestChatGroupEventsReadLikeChat: recv's text form tells group changes
// as a chat app does, with the group's name; typing in a group names the
// group; a device its user links later (added by any member's commit)
// knows the group's name and admins.
func TestChatGroupEventsReadLikeChat(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob", "carol")
	alice, bob, carol := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	var bobKey string
	for _, p := range []*profile{alice, bob, carol} {
		out := p.must(t, password(p.user), p.loginArgs(n)...)
		if p == bob {
			bobKey = keyValues(out)["recovery-key"]
		}
		p.must(t, "", "recv", "--timeout", "1s") // publishes KeyPackages
	}
	out := strings.Split(strings.TrimSpace(alice.must(t, "", "group", "create", "Team", "--members", bobAddr)), "\n")
	id := out[len(out)-1]
	alice.must(t, "", "group", "add", id, "carol@localhost")
	alice.must(t, "", "group", "promote", id, bobAddr)
	text := bob.must(t, "", "recv", "--timeout", "1s")
	for _, want := range []string{"* alice created the group Team\n", "* alice added carol\n", "* alice made you an admin\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("bob's recv lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, id) || strings.Contains(text, "[") {
		t.Errorf("bob's recv shows ids or raw events:\n%s", text)
	}
	if text := carol.must(t, "", "recv", "--timeout", "1s"); !strings.Contains(text, "* alice added you to the group Team\n") {
		t.Errorf("carol's recv:\n%s", text)
	}
	carol.must(t, "", "group", "leave", id)
	if text := alice.must(t, "", "recv", "--timeout", "1s"); !strings.Contains(text, "* carol left the group Team\n") {
		t.Errorf("alice's recv after carol left:\n%s", text)
	}

	// Typing in the group names it.
	follow := exec.Command(hearthBin, "chat", "--profile", bob.dir, "recv", "--signals", "--timeout", "2500ms")
	var fout strings.Builder
	follow.Stdout = &fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // recv is connected and listening
	alice.must(t, "", "typing", id)
	follow.Wait()
	if !strings.Contains(fout.String(), "* alice@localhost is typing in the group Team\n") {
		t.Errorf("bob's recv --signals:\n%s", fout.String())
	}

	// Bob links a laptop; alice's next send adds it and forwards the
	// group's description.
	keyFile := filepath.Join(t.TempDir(), "bob.rk")
	os.WriteFile(keyFile, []byte(bobKey), 0o600)
	laptop := newProfile(t, "bob")
	laptop.must(t, password("bob"), laptop.loginArgs(n, "--recovery-key-file", keyFile)...)
	alice.must(t, "", "send", id, "welcome, laptop")
	text = laptop.must(t, "", "recv", "--timeout", "1s")
	if !strings.Contains(text, "alice@localhost: welcome, laptop") {
		t.Errorf("laptop's recv:\n%s", text)
	}
	if gi := groupInfo(t, laptop, id); gi.Name != "Team" || !slices.Equal(gi.Admins, []string{aliceAddr, bobAddr}) {
		t.Errorf("the laptop sees %+v", gi)
	}
}
