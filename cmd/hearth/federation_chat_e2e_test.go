package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/client"
	"hearth/homeserver/certs"
)

// TestFederationChatE2E: alice@a.example and bob@b.example, each on their
// own `hearth serve`, talk with `hearth chat` (real MLS through the client
// library): the conversation is hubbed at the sender's server and the
// other side follows it through federation.
func TestFederationChatE2E(t *testing.T) {
	skipShort(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
	for _, u := range []struct {
		s    *fedServer
		name string
	}{{a, "alice"}, {b, "bob"}} {
		mustHearth(t, password(u.name), "admin", "--dir", u.s.dir, "user", "add", u.name, "--password-stdin")
	}
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", "alice@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), "login", "bob@b.example", "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")

	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice.must(t, "", "send", bobAt, "hello across domains")
	expectRecv(t, bob, aliceAt+":hello across domains")
	bob.must(t, "", "send", aliceAt, "hi from b")
	expectRecv(t, alice, bobAt+":hi from b")
	if got := sameHistory(t, []*profile{alice, bob}, []string{bobAt, aliceAt}); got != 2 {
		t.Fatalf("history has %d messages, want 2", got)
	}
}

// openClient opens a logged-in profile with the client library in this
// process (the chat commands have no group subcommand yet).
func openClient(t *testing.T, p *profile) *client.Client {
	t.Helper()
	c, err := client.Open(client.Config{Profile: p.dir, Dial: dialServer, Groups: newGroupEngine()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFederationGroupChatE2E: a GROUP created by alice@a.example (so hubbed
// at a, with the admin-signed MLS commits of decision 0003) with
// bob@b.example and carol@c.example; each sends, and every member ends
// with the same history.
func TestFederationGroupChatE2E(t *testing.T) {
	parallelE2E(t)
	servers := []*fedServer{newFedServer(t, "a.example"), newFedServer(t, "b.example"), newFedServer(t, "c.example")}
	for _, x := range servers {
		for _, y := range servers {
			if x != y {
				x.admin(t, "", "federation", "peer", "add", y.domain, "--address", y.listen, "--ca", filepath.Join(y.dir, certs.CAFile))
			}
		}
	}
	names := []string{"alice", "bob", "carol"}
	var profiles []*profile
	for i, s := range servers {
		mustHearth(t, password(names[i]), "admin", "--dir", s.dir, "user", "add", names[i], "--password-stdin")
		p := newProfile(t, names[i])
		p.must(t, password(names[i]), "login", names[i]+"@"+s.domain, "--server", s.listen, "--ca", filepath.Join(s.dir, certs.CAFile), "--password-stdin")
		profiles = append(profiles, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ac := openClient(t, profiles[0])
	conv, err := ac.Groups().Create(ctx, "trio", []string{"bob@b.example", "carol@c.example"})
	ac.Close()
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	if !strings.HasSuffix(conv, "@a.example") {
		t.Fatalf("group id %q is not hubbed at a", conv)
	}
	for i, p := range profiles {
		p.must(t, "", "recv", "--timeout", "3s") // join (welcome) and catch up
		p.must(t, "", "send", conv, "hello from "+names[i])
	}
	for _, p := range profiles {
		p.must(t, "", "recv", "--timeout", "3s")
	}
	var want []string
	for i, p := range profiles {
		h := parseMsgs(t, p.must(t, "", "history", conv, "--json"))
		var got []string
		for _, m := range h {
			got = append(got, m.From+":"+m.Text)
		}
		if i == 0 {
			want = got
		} else if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s history %v, alice's %v", names[i], got, want)
		}
	}
	if len(want) != 3 {
		t.Fatalf("history %v, want the three greetings", want)
	}
}
