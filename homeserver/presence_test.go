package homeserver

import (
	"context"
	"testing"
	"time"

	"hearth/federation/fedwire"
	"hearth/homeserver/fedlink"
	"hearth/homeserver/wire"
	"hearth/storage"
)

const (
	online  = wire.PresenceState_PRESENCE_STATE_ONLINE
	away    = wire.PresenceState_PRESENCE_STATE_AWAY
	offline = wire.PresenceState_PRESENCE_STATE_OFFLINE
	unknown = wire.PresenceState_PRESENCE_STATE_UNSPECIFIED
)

func TestViewPresence(t *testing.T) {
	const at = 1234
	e, c, n := storage.LastSeenEveryone, storage.LastSeenContacts, storage.LastSeenNobody
	for _, tc := range []struct {
		name           string
		target, reader int
		contact, self  bool
		wantSt         wire.PresenceState
		wantAt         int64
	}{
		{"everyone to a stranger", e, e, false, false, offline, at},
		{"everyone to a contact", e, e, true, false, offline, at},
		{"contacts to a contact", c, e, true, false, offline, at},
		{"contacts to a stranger: nothing", c, e, false, false, unknown, 0},
		{"nobody to a contact: the state only", n, e, true, false, offline, 0},
		{"nobody to a stranger: nothing", n, e, false, false, unknown, 0},
		{"a reader hiding theirs sees no one's", e, n, true, false, offline, 0},
		{"a reader sharing with contacts sees a stranger's state only", e, c, false, false, offline, 0},
		{"a reader sharing with contacts sees a contact's", c, c, true, false, offline, at},
		{"oneself, always", n, n, false, true, offline, at},
	} {
		st, gotAt := viewPresence(offline, at, tc.target, tc.reader, tc.contact, tc.self)
		if st != tc.wantSt || gotAt != tc.wantAt {
			t.Errorf("%s: %v %d, want %v %d", tc.name, st, gotAt, tc.wantSt, tc.wantAt)
		}
	}
}

func TestMemoryPresenceExpire(t *testing.T) {
	p := NewMemoryPresence()
	if !p.Set("a@x", online, 10, 100) || p.Set("a@x", online, 10, 200) {
		t.Fatal("a repetition (same state and time, later until) must not count as a change")
	}
	p.Set("b@x", away, 10, 0) // held: never lapses
	p.Set("c@x", offline, 10, 50)
	if got := p.Expire(150); len(got) != 0 {
		t.Fatalf("expired %v before the renewed until", got)
	}
	got := p.Expire(200)
	if len(got) != 1 || got[0].User != "a@x" || got[0].State != offline || got[0].AtMs != 200 {
		t.Fatalf("expired %v", got)
	}
	if st, at := p.Get("a@x"); st != offline || at != 200 {
		t.Fatalf("a@x is %v at %d", st, at)
	}
	if pr := p.Present(); len(pr) != 1 || pr[0].User != "b@x" {
		t.Fatalf("present %v", pr)
	}
}

func hello(c *client, token string, passive bool) {
	c.t.Helper()
	if r := c.call(&wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: token, Passive: passive}}}); r.GetError() != nil {
		c.t.Fatalf("hello: %v", r)
	}
}

func getPresence(c *client, users ...string) []*wire.PresenceEvent {
	c.t.Helper()
	return c.must(&wire.ClientFrame{Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{Users: users}}}).GetPresenceList().GetPresence()
}

func setLastSeen(c *client, v wire.LastSeenVisibility) wire.LastSeenVisibility {
	c.t.Helper()
	return c.must(&wire.ClientFrame{Body: &wire.ClientFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{LastSeen: v}}}).GetPresenceSettings().GetLastSeen()
}

// TestPresencePassiveSessions: a passive session neither marks its user
// online nor offline and gets no presence; SetPresence from it does
// change the presence, for the lease when no active session holds the
// user; an active session makes the user online until it ends.
func TestPresencePassiveSessions(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	aliceAt := "alice@" + testDomain
	alice.conn.Close()
	awaitPush(t, bob, "alice offline", presenceOf(aliceAt, offline))

	p := h.connect()
	hello(p, alice.access, true)
	p.conn.Close()
	noPush(t, bob, 200*time.Millisecond, presenceOf(aliceAt, 0))
	if st, _ := h.s.presence.Get(aliceAt); st != offline {
		t.Fatalf("a passive session made alice %v", st)
	}

	// An explicit state from a one-shot session lasts the lease.
	p = h.connect()
	hello(p, alice.access, true)
	p.must(presenceFrame(online))
	awaitPush(t, bob, "alice online", presenceOf(aliceAt, online))
	p.conn.Close()
	noPush(t, bob, 200*time.Millisecond, presenceOf(aliceAt, offline))
	h.clock.Add(h.s.cfg.Presence.Lease - time.Second)
	h.s.presenceTick(context.Background())
	noPush(t, bob, 100*time.Millisecond, presenceOf(aliceAt, offline))
	h.clock.Add(2 * time.Second)
	h.s.presenceTick(context.Background())
	awaitPush(t, bob, "alice offline after the lease", presenceOf(aliceAt, offline))

	// A passive session gets no presence pushes; an active one gets the
	// contacts' list when it connects.
	p = h.connect()
	hello(p, alice.access, true)
	bob.must(presenceFrame(away))
	noPush(t, p, 200*time.Millisecond, presenceOf("bob@"+testDomain, 0))
	a2 := h.connect()
	hello(a2, alice.access, false)
	awaitPush(t, a2, "bob away in the contacts' list", func(f *wire.ServerFrame) bool {
		return f.GetPresenceList() != nil && presenceOf("bob@"+testDomain, away)(f)
	})
	awaitPush(t, bob, "alice online", presenceOf(aliceAt, online))
	// While it holds alice, a one-shot state does not lapse.
	p.must(presenceFrame(away))
	h.clock.Add(h.s.cfg.Presence.Lease + time.Minute)
	h.s.presenceTick(context.Background())
	if st, _ := h.s.presence.Get(aliceAt); st != away {
		t.Fatalf("alice is %v, want away (held by her active session)", st)
	}
	a2.conn.Close()
	awaitPush(t, bob, "alice offline", presenceOf(aliceAt, offline))
}

// TestPresenceLastSeenSetting: GetPresence shows the last seen as the
// target's setting and the reader's own allow; the setting and the last
// seen are kept per account across a restart.
func TestPresenceLastSeenSetting(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	eve, _ := h.firstDevice("eve") // no conversation with alice
	aliceAt := "alice@" + testDomain
	alice.conn.Close()
	awaitPush(t, bob, "alice offline", presenceOf(aliceAt, offline))
	wentOff := h.clock.Now().UnixMilli()

	check := func(c *client, wantSt wire.PresenceState, wantAt int64) {
		t.Helper()
		evs := getPresence(c, aliceAt)
		if len(evs) != 1 || evs[0].User != aliceAt || evs[0].State != wantSt || evs[0].LastActiveMs != wantAt {
			t.Fatalf("%s asks alice: %v, want %v at %d", c.user, evs, wantSt, wantAt)
		}
	}
	check(bob, offline, wentOff)
	check(eve, offline, wentOff)
	a := h.connect()
	hello(a, alice.access, true)
	if got := setLastSeen(a, wire.LastSeenVisibility_LAST_SEEN_UNSPECIFIED); got != wire.LastSeenVisibility_LAST_SEEN_EVERYONE {
		t.Fatalf("default setting %v", got)
	}
	setLastSeen(a, wire.LastSeenVisibility_LAST_SEEN_CONTACTS)
	check(bob, offline, wentOff)
	check(eve, unknown, 0)
	setLastSeen(a, wire.LastSeenVisibility_LAST_SEEN_NOBODY)
	check(bob, offline, 0)
	a.fails(&wire.ClientFrame{Body: &wire.ClientFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{LastSeen: 9}}}, wire.Code_CODE_BAD_REQUEST)
	bob.fails(&wire.ClientFrame{Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{Users: []string{"nobody@" + testDomain}}}}, wire.Code_CODE_NOT_FOUND)
	bob.fails(&wire.ClientFrame{Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{Users: []string{"not an address"}}}}, wire.Code_CODE_BAD_REQUEST)

	// Kept across a restart: the setting, and the last seen from the database.
	setLastSeen(a, wire.LastSeenVisibility_LAST_SEEN_CONTACTS)
	h.restart()
	b2 := h.connect()
	hello(b2, bob.access, true)
	check(b2, offline, wentOff)
	e2 := h.connect()
	hello(e2, eve.access, true)
	check(e2, unknown, 0)
}

// TestFederatedPresenceLapse: a remote user's ONLINE lapses at the
// receiving servers (the hub, and a follower it relayed to) once its
// server stops repeating it; a repetition renews it without a new push;
// a peer cannot make a state hold longer than maxPresenceTTL.
func TestFederatedPresenceLapse(t *testing.T) {
	a, b, c, alice, bob, carol, _ := groupOfThree(t)
	bobAt := "bob@b.example"
	bob.must(presenceFrame(online))
	awaitPresence(t, alice, bobAt, online)
	awaitPresence(t, carol, bobAt, online)

	// b repeats bob's state: a renews it and pushes nothing new.
	ttl := b.s.presenceTTL()
	a.skew.Add(int64(ttl / 2))
	c.skew.Add(int64(ttl / 2))
	b.s.presenceTick(context.Background())
	noPush(t, alice, 300*time.Millisecond, presenceOf(bobAt, 0))
	a.skew.Add(int64(ttl/2 + time.Second))
	c.skew.Add(int64(ttl/2 + time.Second))
	a.s.presenceTick(context.Background())
	c.s.presenceTick(context.Background())
	if st, _ := a.s.presence.Get(bobAt); st != online {
		t.Fatalf("bob lapsed at a though b repeated his state: %v", st)
	}
	// b goes silent (as if killed): bob lapses at a and at c.
	b.stop()
	a.skew.Add(int64(ttl))
	c.skew.Add(int64(ttl))
	a.s.presenceTick(context.Background())
	c.s.presenceTick(context.Background())
	awaitPresence(t, alice, bobAt, offline)
	awaitPresence(t, carol, bobAt, offline)

	// A TTL over the bound is cut to it.
	res := a.s.fed.Signals.ApplySignals(context.Background(), &fedwire.Transaction{Origin: "c.example", Destination: "a.example",
		Envelopes: []*fedwire.Envelope{{Id: "prs-long", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE,
			Sender: "carol@c.example", Presence: uint32(online), LastActiveMs: 1, PresenceTtlMs: uint32(10 * time.Hour / time.Millisecond)}}})
	if got := res.GetResults()[0].GetCode(); got != fedwire.Code_CODE_OK {
		t.Fatalf("carol's presence: %v", res)
	}
	mp := a.s.presence.(*MemoryPresence)
	mp.mu.Lock()
	until := mp.m["carol@c.example"].UntilMs
	mp.mu.Unlock()
	if max := a.s.now().Add(fedlink.MaxPresenceTTL).UnixMilli(); until > max || until == 0 {
		t.Fatalf("carol's state holds until %d, bound %d", until, max)
	}
}

// TestFederatedPresenceSettings: a remote user's presence reaches a local
// reader who hides their own last seen without its time; a user hiding
// theirs is sent to other servers without it, also once it lapsed there.
func TestFederatedPresenceSettings(t *testing.T) {
	a, b, _, alice, bob, carol, _ := groupOfThree(t)
	bobAt := "bob@b.example"
	setLastSeen(alice, wire.LastSeenVisibility_LAST_SEEN_NOBODY)
	bob.must(presenceFrame(away))
	got := awaitPush(t, alice, "bob away", presenceOf(bobAt, away)).GetPresence()
	if got.GetLastActiveMs() != 0 {
		t.Fatalf("alice, who hides hers, was told bob's last seen: %v", got)
	}
	if got := awaitPush(t, carol, "bob away", presenceOf(bobAt, away)).GetPresence(); got.GetLastActiveMs() == 0 {
		t.Fatalf("carol was not told bob's last seen: %v", got)
	}

	setLastSeen(bob, wire.LastSeenVisibility_LAST_SEEN_NOBODY)
	bob.must(presenceFrame(online))
	if got := awaitPush(t, carol, "bob online", presenceOf(bobAt, online)).GetPresence(); got.GetLastActiveMs() != 0 {
		t.Fatalf("bob hides his last seen; carol got %v", got)
	}
	// b goes silent: bob lapses at a without a made-up time.
	ttl := b.s.presenceTTL()
	b.stop()
	a.skew.Add(int64(ttl + time.Second))
	a.s.presenceTick(context.Background())
	if st, at := a.s.presence.Get(bobAt); st != offline || at != 0 {
		t.Fatalf("bob lapsed at a as %v at %d, want offline with no time", st, at)
	}
}
