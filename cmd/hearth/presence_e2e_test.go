package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
)

// signalWatch is a running `recv --follow --json --signals`.
type signalWatch struct {
	cmd   *exec.Cmd
	lines chan map[string]any
}

func watchSignals(t *testing.T, p *profile, extra ...string) *signalWatch {
	t.Helper()
	args := append([]string{"chat", "--profile", p.dir, "recv", "--follow", "--json", "--signals"}, extra...)
	w := &signalWatch{cmd: exec.Command(hearthBin, args...), lines: make(chan map[string]any, 100)}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err == nil {
				w.lines <- m
			}
		}
	}()
	return w
}

// stop ends the watch as Ctrl-C does.
func (w *signalWatch) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
}

func isPresence(user, state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		return m["event"] == "presence" && m["user"] == user && (state == "" || m["state"] == state)
	}
}

// awaitWithin is await with a deadline of d, failing on any object that
// matches forbidden (nil: none) on the way.
func awaitWithin(t *testing.T, lines <-chan map[string]any, d time.Duration, what string, match, forbidden func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("recv ended before %s", what)
			}
			if match(m) {
				return m
			}
			if forbidden != nil && forbidden(m) {
				t.Fatalf("while waiting for %s: %v", what, m)
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// quiet reads lines for d and fails on one that matches forbidden.
func quiet(t *testing.T, lines <-chan map[string]any, d time.Duration, what string, forbidden func(map[string]any) bool) {
	t.Helper()
	end := time.After(d)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("recv ended")
			}
			if forbidden(m) {
				t.Fatalf("%s: %v", what, m)
			}
		case <-end:
			return
		}
	}
}

// presenceGet runs `chat presence get USER --json` and returns its object.
func presenceGet(t *testing.T, p *profile, user string) map[string]any {
	t.Helper()
	out := p.must(t, "", "presence", "get", user, "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &m); err != nil {
		t.Fatalf("presence get %s printed %q: %v", user, out, err)
	}
	if m["user"] != user {
		t.Fatalf("presence get %s: %v", user, m)
	}
	return m
}

// expectPresence checks a `presence get` answer: state, and whether it
// shows a last seen.
func expectPresence(t *testing.T, p *profile, user, state string, lastSeen bool) {
	t.Helper()
	m := presenceGet(t, p, user)
	_, has := m["last_seen"]
	if m["state"] != state || has != lastSeen {
		t.Fatalf("%s asks %s: %v, want state %s, last seen shown %v", p.user, user, m, state, lastSeen)
	}
}

// TestPresencePassiveAndLastSeen: one-shot commands (send, history,
// device list, recv, presence get) leave the user's presence alone, so a
// watcher sees no online/offline flip; a `recv --follow` makes the user
// online while it runs; `presence get` shows the last seen as the user's
// `settings last-seen` allows, to contacts and to others, both ways.
func TestPresencePassiveAndLastSeen(t *testing.T) {
	skipShort(t)
	n, a1, b1 := newMessagingNet(t)
	mustHearth(t, password("carol"), "admin", "--dir", n.dir, "user", "add", "carol", "--password-stdin")
	carol := newProfile(t, "carol")
	carol.must(t, password("carol"), carol.loginArgs(n)...)
	a1.must(t, "", "send", bobAddr, "hello") // alice and bob are contacts; carol is no one's
	expectRecv(t, b1, aliceAddr+":hello")

	// Bob's watcher is told alice's presence when it connects: offline
	// (never online: login and send are one-shot).
	w := watchSignals(t, b1)
	awaitWithin(t, w.lines, time.Minute, "alice's presence on connect", isPresence(aliceAddr, "offline"), nil)
	a1.must(t, "", "send", bobAddr, "one-shot")
	a1.must(t, "", "history", bobAddr)
	a1.must(t, "", "device", "list")
	a1.must(t, "", "recv", "--timeout", "300ms")
	a1.must(t, "", "presence", "get", bobAddr)
	a1.must(t, "", "typing", bobAddr) // a marker after them
	awaitWithin(t, w.lines, time.Minute, "alice's typing", func(m map[string]any) bool { return m["event"] == "typing" },
		isPresence(aliceAddr, ""))
	// A session's end reaches the server just after its process exits:
	// give a flip the time to show up.
	quiet(t, w.lines, time.Second, "a one-shot command changed alice's presence", isPresence(aliceAddr, ""))

	// recv --follow does make alice online, and offline when it ends.
	aw := watchSignals(t, a1)
	awaitWithin(t, w.lines, time.Minute, "alice online", isPresence(aliceAddr, "online"), isPresence(aliceAddr, "offline"))
	expectPresence(t, b1, aliceAddr, "online", false)
	aw.stop(t)
	off := awaitWithin(t, w.lines, time.Minute, "alice offline", isPresence(aliceAddr, "offline"), nil)
	if off["last_active"] == nil {
		t.Fatalf("alice's offline carries no last seen: %v", off)
	}

	// Last seen per alice's setting: everyone (the default), contacts, nobody.
	expectPresence(t, b1, aliceAddr, "offline", true)
	expectPresence(t, carol, aliceAddr, "offline", true)
	if got := keyValues(a1.must(t, "", "settings", "last-seen", "contacts"))["last-seen"]; got != "contacts" {
		t.Fatalf("settings last-seen contacts printed %q", got)
	}
	expectPresence(t, b1, aliceAddr, "offline", true)
	expectPresence(t, carol, aliceAddr, "unknown", false) // not a contact: not even the state
	a1.must(t, "", "settings", "last-seen", "nobody")
	expectPresence(t, b1, aliceAddr, "offline", false)
	if got := keyValues(a1.must(t, "", "settings", "last-seen"))["last-seen"]; got != "nobody" {
		t.Fatalf("settings last-seen printed %q, want nobody", got)
	}
	if r := a1.chat(t, "", "settings", "last-seen", "friends"); r.code == 0 || !strings.Contains(r.stderr, "everyone, contacts or nobody") {
		t.Fatalf("last-seen friends: exit %d, %q", r.code, r.stderr)
	}

	// Both ways: bob shares his last seen with everyone, but alice, who
	// hides hers, does not see his.
	w.stop(t) // bob goes offline: he has a last seen
	expectPresence(t, carol, bobAddr, "offline", true)
	expectPresence(t, a1, bobAddr, "offline", false)
	a1.must(t, "", "settings", "last-seen", "everyone")
	expectPresence(t, a1, bobAddr, "offline", true)

	// The plain form, and an unknown user.
	if out := a1.must(t, "", "presence", "get", bobAddr); !strings.HasPrefix(out, bobAddr+" offline last seen ") {
		t.Fatalf("presence get printed %q", out)
	}
	if r := a1.chat(t, "", "presence", "get", "nobody@localhost"); r.code == 0 || !strings.Contains(r.stderr, "no user") {
		t.Fatalf("presence get of an unknown user: exit %d, %q", r.code, r.stderr)
	}
}

// signalPoster returns a function that posts one envelope to dest's
// signal path as f, signed with f's federation key, and returns the
// envelope's result code.
func (f *fedServer) signalPoster(t *testing.T, dest *fedServer) func(*fedwire.Envelope) fedwire.Code {
	t.Helper()
	key, err := serverkey.ReadFile(filepath.Join(f.dir, fedKeyFile))
	if err != nil || key == nil {
		t.Fatalf("federation key of %s: %v", f.domain, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dest.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	cl := &federation.Client{Peers: onePeer{federation.Peer{Domain: dest.domain, Address: dest.listen, CAPEM: caPEM}}, Timeout: 10 * time.Second}
	t.Cleanup(func() { cl.Close() })
	n := 0
	return func(env *fedwire.Envelope) fedwire.Code {
		t.Helper()
		n++
		st, err := federation.SignSignals(key, &fedwire.Transaction{Origin: f.domain, Destination: dest.domain,
			TxnId: fmt.Sprintf("forge-%d", n), OriginTimeMs: time.Now().UnixMilli(), Envelopes: []*fedwire.Envelope{env}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Signal(context.Background(), dest.domain, st)
		if err != nil || res.GetCode() != fedwire.Code_CODE_OK || len(res.GetResults()) != 1 {
			t.Fatalf("post a signal to %s: %v %v", dest.domain, res, err)
		}
		return res.GetResults()[0].GetCode()
	}
}

// setPresenceConfig sets the "presence" object of f's config.json (before
// the server starts).
func setPresenceConfig(t *testing.T, dir string, presence map[string]any) {
	t.Helper()
	path := filepath.Join(dir, configFile)
	var cfg map[string]any
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	cfg["presence"] = presence
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFederatedPresenceGetAndExpiry: alice@a.example asks the presence of
// bob@b.example (a signed query b answers under bob's setting), dave@a
// (no contact of bob's) sees what bob shares with everyone; and when b is
// killed with SIGKILL while bob is online, alice's watcher sees bob go
// offline within 4 × the refresh (docs/presence.md).
func TestFederatedPresenceGetAndExpiry(t *testing.T) {
	skipShort(t)
	const refresh = time.Second
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	for _, s := range []*fedServer{a, b} {
		s.srv.stop(t, syscall.SIGTERM)
		setPresenceConfig(t, s.dir, map[string]any{"refresh": refresh.String()})
		s.start(t)
	}
	a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
	login := func(s *fedServer, name string) *profile {
		mustHearth(t, password(name), "admin", "--dir", s.dir, "user", "add", name, "--password-stdin")
		p := newProfile(t, name)
		p.must(t, password(name), "login", name+"@"+s.domain, "--server", s.listen, "--ca", filepath.Join(s.dir, certs.CAFile), "--password-stdin")
		return p
	}
	alice, dave, bob := login(a, "alice"), login(a, "dave"), login(b, "bob")
	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice.must(t, "", "send", bobAt, "hello across domains") // hubbed at a
	expectRecv(t, bob, aliceAt+":hello across domains")

	w := watchSignals(t, alice)
	bw := watchSignals(t, bob)
	awaitWithin(t, w.lines, time.Minute, "bob online", isPresence(bobAt, "online"), nil)
	expectPresence(t, alice, bobAt, "online", false)
	bw.stop(t)
	awaitWithin(t, w.lines, time.Minute, "bob offline", isPresence(bobAt, "offline"), nil)
	expectPresence(t, alice, bobAt, "offline", true)
	expectPresence(t, dave, bobAt, "offline", true)
	bob.must(t, "", "settings", "last-seen", "contacts")
	expectPresence(t, alice, bobAt, "offline", true)
	expectPresence(t, dave, bobAt, "unknown", false)
	bob.must(t, "", "settings", "last-seen", "nobody")
	expectPresence(t, alice, bobAt, "offline", false)
	// Alice hiding hers hides bob's from her even when he shares it.
	bob.must(t, "", "settings", "last-seen", "everyone")
	alice.must(t, "", "settings", "last-seen", "nobody")
	expectPresence(t, alice, bobAt, "offline", false)
	expectPresence(t, dave, bobAt, "offline", true)

	// Signals signed with b's real key (from its data folder), posted to a
	// as b: b may speak for its own users (the control), not for a user
	// of c.example to alice (b hubs no conversation of hers), nor for a's
	// own alice.
	forge := b.signalPoster(t, a)
	presenceEnv := func(id, user string, st wire.PresenceState) *fedwire.Envelope {
		return &fedwire.Envelope{Id: id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE, Sender: user, Presence: uint32(st),
			LastActiveMs: time.Now().UnixMilli(), Recipients: []string{aliceAt}, PresenceTtlMs: 60000}
	}
	for _, tc := range []struct {
		env  *fedwire.Envelope
		want fedwire.Code
	}{
		{presenceEnv("forged-third", "carol@c.example", wire.PresenceState_PRESENCE_STATE_ONLINE), fedwire.Code_CODE_FORBIDDEN},
		{presenceEnv("forged-own", aliceAt, wire.PresenceState_PRESENCE_STATE_AWAY), fedwire.Code_CODE_FORBIDDEN},
		{presenceEnv("control", bobAt, wire.PresenceState_PRESENCE_STATE_AWAY), fedwire.Code_CODE_OK},
	} {
		if got := forge(tc.env); got != tc.want {
			t.Fatalf("%s: %v, want %v", tc.env.Id, got, tc.want)
		}
	}
	awaitWithin(t, w.lines, time.Minute, "bob away (the control)", isPresence(bobAt, "away"),
		func(m map[string]any) bool { return isPresence("carol@c.example", "")(m) || isPresence(aliceAt, "")(m) })

	// b crashes while bob is online: a stops hearing bob's state repeated
	// and lets it lapse.
	bw = watchSignals(t, bob)
	awaitWithin(t, w.lines, time.Minute, "bob online again", isPresence(bobAt, "online"), nil)
	// More than a TTL (3 × refresh) passes: the repetitions keep bob online
	// while b is up.
	quiet(t, w.lines, 4*refresh, "bob lapsed while b was up", isPresence(bobAt, "offline"))
	killed := time.Now()
	b.srv.stop(t, syscall.SIGKILL)
	awaitWithin(t, w.lines, 30*time.Second, "bob offline after b was killed", isPresence(bobAt, "offline"), nil)
	took := time.Since(killed)
	if took > 4*refresh+3*time.Second { // slack for a busy machine
		t.Fatalf("bob went offline %v after b was killed, documented bound 4 × %v", took, refresh)
	}
	t.Logf("bob went offline at a %v after b was killed (refresh %v)", took, refresh)
	bw.stop(t)
}
