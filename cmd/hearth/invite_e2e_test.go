package main

import (
	"encoding/json"
	"strings"
	"testing"

	"hearth/homeserver/admin"
)

// TestInviteE2E: an administrator issues an invite code, a new user
// creates their account with it through `chat login --invite` and messages
// an existing user; used-up and revoked codes are refused and create
// nothing. All with the real binary against a real server.
func TestInviteE2E(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "bob")
	adm := func(args ...string) result {
		return hearth(t, nil, "", append([]string{"admin", "--dir", n.dir, "invite"}, args...)...)
	}
	b := newProfile(t, "bob")
	b.must(t, password("bob"), b.loginArgs(n)...)

	r := adm("create")
	code := keyValues(r.stdout)["invite"]
	if r.code != 0 || len(code) != 19 || keyValues(r.stdout)["uses"] != "1" {
		t.Fatalf("invite create: %+v", r)
	}
	if r := adm("create", "--uses", "0"); r.code != 1 || !strings.Contains(r.stderr, "uses must be") {
		t.Errorf("invite create --uses 0: %+v", r)
	}

	dora := newProfile(t, "dora")
	kvs := keyValues(dora.must(t, password("dora"), dora.loginArgs(n, "--invite", code)...))
	if kvs["user"] != "dora@localhost" || kvs["recovery-key"] == "" || kvs["status"] != "active" {
		t.Fatalf("login --invite printed %v", kvs)
	}
	dora.must(t, "", "send", bobAddr, "hello from an invite")
	expectRecv(t, b, "dora@localhost:hello from an invite")
	b.must(t, "", "send", "dora@localhost", "welcome dora")
	expectRecv(t, dora, bobAddr+":welcome dora")

	// The code had one use: a second account is refused and not created.
	erin := newProfile(t, "erin")
	if r := erin.chat(t, password("erin"), erin.loginArgs(n, "--invite", code)...); r.code == 0 || !strings.Contains(r.stderr, "used up") {
		t.Fatalf("second use of a one-use code: %+v", r)
	}
	var users []admin.UserInfo
	if r := hearth(t, nil, "", "admin", "--dir", n.dir, "user", "list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &users) != nil {
		t.Fatalf("user list: %+v", r)
	}
	if len(users) != 2 || users[0].Name != "bob" || users[1].Name != "dora" || users[1].Admin {
		t.Fatalf("users after invites: %+v", users)
	}

	// The listing shows the state, never the code.
	var list []admin.InviteInfo
	r = adm("list", "--json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0].State != "used" || list[0].UsesLeft != 0 {
		t.Fatalf("invite list --json: %+v", r)
	}
	table := adm("list")
	if table.code != 0 || !strings.Contains(table.stdout, code[:4]+"-…") || strings.Contains(table.stdout+r.stdout, code[5:]) {
		t.Fatalf("invite list: %+v", table)
	}

	// Revoked codes are refused, by code and by id.
	second := keyValues(adm("create", "--uses", "5", "--expires", "1h").stdout)
	if r := adm("revoke", second["invite"]); r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("invite revoke: %+v", r)
	}
	if r := adm("revoke", second["invite"]); r.code != 1 || !strings.Contains(r.stderr, "no such") {
		t.Errorf("second revoke: %+v", r)
	}
	if r := erin.chat(t, password("erin"), erin.loginArgs(n, "--invite", second["invite"])...); r.code == 0 || !strings.Contains(r.stderr, "revoked") {
		t.Fatalf("revoked code: %+v", r)
	}
	third := keyValues(adm("create").stdout)
	if r := adm("revoke", "--id", third["id"]); r.code != 0 {
		t.Fatalf("invite revoke --id: %+v", r)
	}
	if r := adm("revoke"); r.code != 1 || !strings.Contains(r.stderr, "--id") {
		t.Errorf("revoke without code or id: %+v", r)
	}
	if r := erin.chat(t, password("erin"), erin.loginArgs(n, "--invite", third["invite"])...); r.code == 0 || !strings.Contains(r.stderr, "revoked") {
		t.Fatalf("code revoked by id: %+v", r)
	}
	if r := adm("list", "--json"); json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 3 {
		t.Fatalf("invite list after revokes: %+v", r)
	}
}
