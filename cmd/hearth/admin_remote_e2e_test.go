package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"hearth/homeserver/admin"
)

// TestAdminRemoteRolesAudit: remote administration over the server's
// HTTPS listener is refused without a token (401) and for a non-admin
// (403), works for an admin-role user's device with the same subcommands
// as the socket, follows role changes at once, and every action, local
// or remote, is in `admin audit` with its actor. `chat token` prints a
// token the REST endpoints accept.
func TestAdminRemoteRolesAudit(t *testing.T) {
	skipShort(t)
	parallelE2E(t)
	n := newChatNet(t, "root", "bob")
	root, bob := newProfile(t, "root"), newProfile(t, "bob")
	root.must(t, password("root"), root.loginArgs(n)...)
	bob.must(t, password("bob"), bob.loginArgs(n)...)
	rootActor := "root@localhost/" + storedAccount(t, root).DeviceID
	bobActor := "bob@localhost/" + storedAccount(t, bob).DeviceID
	local := func(stdin string, args ...string) string {
		t.Helper()
		return mustHearth(t, stdin, append([]string{"admin", "--dir", n.dir}, args...)...)
	}
	remote := func(p *profile, stdin string, args ...string) result {
		t.Helper()
		return hearth(t, nil, stdin, append([]string{"admin", "--server", n.srv.addr, "--profile", p.dir}, args...)...)
	}

	// No token: 401 with a clear error; nothing changes.
	rsp, body := n.srv.httpsGet(t, "/hearth/v1/admin/users")
	if rsp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "access token") {
		t.Errorf("no token: %s %s", rsp.Status, body)
	}
	// A user without the admin role: 403, the CLI says why.
	r := remote(bob, "pw-carol-secret\n", "user", "add", "carol", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "does not have the admin role") || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("non-admin remote user add: %+v", r)
	}
	if _, e := n.srv.login(t, "carol", "pw-carol-secret", false); e == nil {
		t.Fatal("a refused remote user add created the account")
	}
	bobTok := strings.TrimSpace(bob.must(t, "", "token"))
	req, _ := http.NewRequest("GET", "https://"+n.srv.addr+"/hearth/v1/admin/status", nil)
	req.Header.Set("Authorization", "Bearer "+bobTok)
	if rsp, body := n.srv.do(t, req); rsp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "CODE_FORBIDDEN") {
		t.Errorf("bob's token on the admin status: %s %s", rsp.Status, body)
	}

	// Roles mean something: root becomes an admin and administers remotely.
	if out := local("", "user", "role", "root", "admin"); !strings.Contains(out, "root: role admin") {
		t.Errorf("role: %q", out)
	}
	if r := remote(root, "pw-carol-secret\n", "user", "add", "carol", "--password-stdin"); r.code != 0 || !strings.Contains(r.stdout, "created carol@localhost (user)") {
		t.Fatalf("admin remote user add: %+v", r)
	}
	if ok, e := n.srv.login(t, "carol", "pw-carol-secret", false); ok == nil {
		t.Fatalf("carol, added remotely, cannot log in: %v", e)
	}
	// The same output as over the socket; --server defaults to the profile's.
	viaSocket := local("", "user", "list")
	r = hearth(t, nil, "", "admin", "--profile", root.dir, "user", "list")
	if r.code != 0 || r.stdout != viaSocket || !strings.Contains(r.stdout, "carol@localhost") {
		t.Errorf("remote user list:\n%s\nsocket:\n%s", r.stdout, viaSocket)
	}
	if r := remote(root, "", "user", "disable", "carol"); r.code != 0 || r.stdout != "carol: disabled\n" {
		t.Errorf("remote disable: %+v", r)
	}
	// A token from `chat token` works for scripts: root's on the REST admin status.
	rootTok := strings.TrimSpace(root.must(t, "", "token"))
	// --min-valid longer than the token's life (15 min) refreshes it.
	var fresh struct {
		AccessToken string `json:"access_token"`
		ExpiresMs   int64  `json:"expires_ms"`
	}
	if err := json.Unmarshal([]byte(root.must(t, "", "token", "--min-valid", "1h", "--json")), &fresh); err != nil || fresh.AccessToken == "" || fresh.AccessToken == rootTok || fresh.ExpiresMs == 0 {
		t.Fatalf("token --min-valid 1h: %+v, %v", fresh, err)
	}
	if again := strings.TrimSpace(root.must(t, "", "token")); again != fresh.AccessToken {
		t.Errorf("the refreshed token was not kept in the profile")
	}
	rootTok = fresh.AccessToken
	req, _ = http.NewRequest("GET", "https://"+n.srv.addr+"/hearth/v1/admin/status", nil)
	req.Header.Set("Authorization", "Bearer "+rootTok)
	if rsp, body := n.srv.do(t, req); rsp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"domain":"localhost"`) {
		t.Errorf("root's token on the admin status: %s %s", rsp.Status, body)
	}

	// Taking the role back takes effect at the next request.
	local("", "user", "role", "root", "user")
	if r := remote(root, "", "user", "enable", "carol"); r.code != 1 || !strings.Contains(r.stderr, "does not have the admin role") {
		t.Errorf("remote after the role was taken back: %+v", r)
	}
	if rsp, _ := n.srv.do(t, req); rsp.StatusCode != http.StatusForbidden {
		t.Errorf("root's token after the role was taken back: %s", rsp.Status)
	}

	// Everything is in the audit log, newest first, with its actor.
	var es []admin.AuditEntry
	if err := json.Unmarshal([]byte(local("", "audit", "--json", "--limit", "100")), &es); err != nil {
		t.Fatal(err)
	}
	type row struct{ via, actor, action, target, code string }
	want := []row{
		{"rest", rootActor, "GET /v1/status", "", "CODE_FORBIDDEN"},
		{"rest", rootActor, "POST /v1/users/carol/enable", "", "CODE_FORBIDDEN"},
		{"socket", "local", "PUT /v1/users/{name}/role", "name=root role=user", ""},
		{"rest", rootActor, "GET /v1/status", "", ""},
		{"rest", rootActor, "POST /v1/users/{name}/disable", "name=carol", ""},
		{"rest", rootActor, "GET /v1/users", "", ""},
		{"rest", rootActor, "POST /v1/users", "name=carol", ""},
		{"socket", "local", "PUT /v1/users/{name}/role", "name=root role=admin", ""},
		{"rest", bobActor, "GET /v1/status", "", "CODE_FORBIDDEN"},
		{"rest", bobActor, "POST /v1/users", "", "CODE_FORBIDDEN"},
		{"socket", "local", "POST /v1/users", "name=bob", ""},
		{"socket", "local", "POST /v1/users", "name=root", ""},
	}
	var got []row
	for _, e := range es {
		got = append(got, row{e.Via, e.Actor, e.Action, e.Target, e.Code})
		if e.AtMs == 0 || e.Status == 0 || (e.Via == "rest") != (e.Remote != "") {
			t.Errorf("entry %+v: no time, status or remote address", e)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("audit:\n%+v\nwant\n%+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("audit entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// The table, and the log read remotely by an admin.
	table := local("", "audit", "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], rootActor) {
		t.Errorf("audit table:\n%s", table)
	}
	local("", "user", "role", "root", "admin")
	if r := remote(root, "", "audit", "--limit", "1", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"name=root role=admin"`) {
		t.Errorf("remote audit: %+v", r)
	}
	// Backups stay on the server's host: the CLI and the endpoint say so.
	if r := remote(root, "", "backup", "--out", t.TempDir()+"/b.tar"); r.code != 1 || !strings.Contains(r.stderr, "local admin socket only") {
		t.Errorf("remote backup: %+v", r)
	}
	req, _ = http.NewRequest("POST", "https://"+n.srv.addr+"/hearth/v1/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(root.must(t, "", "token")))
	if rsp, body := n.srv.do(t, req); rsp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "local admin socket only") {
		t.Errorf("POST backup over REST: %s %s", rsp.Status, body)
	}
	// Clear errors: no server there; --dir with --profile.
	if r := hearth(t, nil, "", "admin", "--server", "127.0.0.1:1", "--profile", root.dir, "status"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach the server at 127.0.0.1:1") {
		t.Errorf("unreachable server: %+v", r)
	}
	if r := hearth(t, nil, "", "admin", "--dir", n.dir, "--profile", root.dir, "status"); r.code != 1 || !strings.Contains(r.stderr, "exclude each other") {
		t.Errorf("--dir and --profile: %+v", r)
	}
}
