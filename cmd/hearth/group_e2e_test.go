package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// groupEvent is one recv --json line, group fields included.
type groupEvent struct {
	Conversation string `json:"conversation"`
	From         string `json:"from"`
	Text         string `json:"text"`
	Event        string `json:"event"`
	User         string `json:"user"`
	Seq          uint64 `json:"seq"`
}

func recvGroup(t *testing.T, p *profile) []groupEvent {
	t.Helper()
	var out []groupEvent
	for _, line := range strings.Split(strings.TrimSpace(p.must(t, "", "recv", "--json", "--timeout", "2s")), "\n") {
		if line == "" {
			continue
		}
		var e groupEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("recv line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func hasEvent(evs []groupEvent, conv, event, user string) bool {
	return slices.ContainsFunc(evs, func(e groupEvent) bool { return e.Conversation == conv && e.Event == event && e.User == user })
}

type groupInfoJSON struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Admins  []string `json:"admins"`
	Epoch   uint64   `json:"epoch"`
	Auth    string   `json:"epoch_authenticator"`
}

func groupInfo(t *testing.T, p *profile, id string) groupInfoJSON {
	t.Helper()
	var gi groupInfoJSON
	if err := json.Unmarshal([]byte(p.must(t, "", "group", "info", id, "--json")), &gi); err != nil {
		t.Fatal(err)
	}
	return gi
}

// TestGroupCLI drives the group contract with the real binary: create
// (id on the last line), send by id, recv --json with "conversation" and
// membership events, a non-admin refused, add, rename, promote, remove by
// the promoted admin, demote, leave, info, and clear errors.
func TestGroupCLI(t *testing.T) {
	parallelE2E(t)
	n, alice, bob := newMessagingNet(t)
	for _, u := range []string{"carol", "dave"} {
		mustHearth(t, password(u), "admin", "--dir", n.dir, "user", "add", u, "--password-stdin")
	}
	carol, dave := newProfile(t, "carol"), newProfile(t, "dave")
	for _, p := range []*profile{carol, dave} {
		p.must(t, password(p.user), p.loginArgs(n)...)
	}
	for _, p := range []*profile{alice, bob, carol, dave} {
		p.must(t, "", "recv", "--timeout", "1s") // publishes KeyPackages
	}
	out := strings.Split(strings.TrimSpace(alice.must(t, "", "group", "create", "team", "--members", "bob@localhost,carol@localhost")), "\n")
	id := out[len(out)-1]
	if !strings.HasSuffix(id, "@localhost") {
		t.Fatalf("create printed %q", out)
	}
	alice.must(t, "", "send", id, "hi all")
	evs := recvGroup(t, bob)
	if !slices.ContainsFunc(evs, func(e groupEvent) bool { return e.Conversation == id && e.Text == "hi all" && e.From == aliceAddr }) {
		t.Fatalf("bob got %+v", evs)
	}
	if gi := groupInfo(t, bob, id); gi.Name != "team" || !slices.Equal(gi.Admins, []string{aliceAddr}) || len(gi.Members) != 3 {
		t.Fatalf("bob sees %+v", gi)
	}
	recvGroup(t, carol)

	// A non-admin cannot remove.
	if r := carol.chat(t, "", "group", "remove", id, "bob@localhost"); r.code == 0 || !strings.Contains(r.stderr, "not an admin") {
		t.Fatalf("non-admin remove: exit %d, stderr %q", r.code, r.stderr)
	}
	alice.must(t, "", "group", "add", id, "dave@localhost")
	alice.must(t, "", "group", "rename", id, "team2")
	alice.must(t, "", "group", "promote", id, "bob@localhost")
	evs = recvGroup(t, bob)
	if !hasEvent(evs, id, "member_added", "dave@localhost") || !hasEvent(evs, id, "promoted", "bob@localhost") ||
		!slices.ContainsFunc(evs, func(e groupEvent) bool { return e.Event == "renamed" && e.Text == "team2" }) {
		t.Fatalf("bob events %+v", evs)
	}
	bob.must(t, "", "group", "remove", id, "carol@localhost")
	if evs := recvGroup(t, carol); !hasEvent(evs, id, "member_removed", "carol@localhost") {
		t.Fatalf("carol events %+v", evs)
	}
	alice.must(t, "", "group", "demote", id, "bob@localhost")
	bob.must(t, "", "send", id, "still a member")
	if evs := recvGroup(t, dave); !hasEvent(evs, id, "demoted", "bob@localhost") ||
		!slices.ContainsFunc(evs, func(e groupEvent) bool { return e.Text == "still a member" }) {
		t.Fatalf("dave events %+v", evs)
	}
	if r := bob.chat(t, "", "group", "rename", id, "nope"); r.code == 0 || !strings.Contains(r.stderr, "not an admin") {
		t.Fatalf("demoted admin rename: exit %d, stderr %q", r.code, r.stderr)
	}
	dave.must(t, "", "group", "leave", id)
	if evs := recvGroup(t, alice); !hasEvent(evs, id, "leaving", "dave@localhost") {
		t.Fatalf("alice events %+v", evs)
	}
	want := groupInfo(t, alice, id)
	if want.Name != "team2" || !slices.Equal(want.Members, []string{aliceAddr, bobAddr}) || !slices.Equal(want.Admins, []string{aliceAddr}) {
		t.Fatalf("alice sees %+v", want)
	}
	recvGroup(t, bob)
	if got := groupInfo(t, bob, id); got.Epoch != want.Epoch || got.Auth != want.Auth || !slices.Equal(got.Members, want.Members) {
		t.Fatalf("bob %+v, alice %+v", got, want)
	}
	if r := alice.chat(t, "", "group", "info", "nosuchgroup@localhost"); r.code == 0 || !strings.Contains(r.stderr, "unknown group") {
		t.Fatalf("unknown group: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := dave.chat(t, "", "group", "info", id); r.code == 0 || !strings.Contains(r.stderr, "not a member") {
		t.Fatalf("info after leaving: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := carol.chat(t, "", "send", id, "let me in"); r.code == 0 || !strings.Contains(r.stderr, "not a member") {
		t.Fatalf("send after removal: exit %d, stderr %q", r.code, r.stderr)
	}
}
