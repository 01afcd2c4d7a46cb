package main

import (
	"encoding/json"
	"strings"
	"testing"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
)

// adminCommands drives `hearth admin` against the running server s and
// checks the effects through the server itself (logins, lists).
func adminCommands(t *testing.T, s *server) {
	d := []string{"admin", "--dir", s.dir}
	adm := func(stdin string, args ...string) result { return hearth(t, nil, stdin, append(d, args...)...) }

	if r := adm("s3cret one\n", "user", "add", "alice", "--admin", "--password-stdin"); r.code != 0 || !strings.Contains(r.stdout, "alice@localhost") {
		t.Fatalf("user add: %+v", r)
	}
	if r := adm("bob password\n", "user", "add", "bob", "--password-stdin"); r.code != 0 {
		t.Fatalf("user add bob: %+v", r)
	}
	// Refusals: duplicate, no --password-stdin, empty password; exit 1, clear message.
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"another password\n", []string{"user", "add", "alice", "--password-stdin"}, "exists"},
		{"x\n", []string{"user", "add", "carol"}, "--password-stdin"},
		{"\n", []string{"user", "add", "carol", "--password-stdin"}, "empty password"},
		{"", []string{"user", "disable", "nobody"}, "not found"},
		{"", []string{"device", "revoke", "alice", "NODEVICE"}, "not found"},
	} {
		r := adm(tc.stdin, tc.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "hearth: ") || !strings.Contains(strings.ToLower(r.stderr), tc.want) {
			t.Errorf("admin %v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// The account works over the network: WebTransport and the WebSocket fallback.
	ok, e := s.login(t, "alice", "s3cret one", false)
	if ok == nil {
		t.Fatalf("alice cannot log in over WebTransport: %v", e)
	}
	if ok2, e := s.login(t, "alice", "s3cret one", true); ok2 == nil {
		t.Fatalf("alice cannot log in over WebSocket: %v", e)
	}
	if _, e := s.login(t, "alice", "wrong", false); e.GetCode() != wire.Code_CODE_BAD_CREDENTIALS {
		t.Errorf("wrong password: %v", e)
	}

	// The table and the JSON list.
	r := adm("", "user", "list")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") {
		t.Fatalf("user list: %+v", r)
	}
	var aliceLine string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "alice ") {
			aliceLine = l
		}
	}
	if f := strings.Fields(aliceLine); len(f) < 5 || f[1] != "alice@localhost" || f[2] != "admin" || f[3] != "active" || f[4] != "2" {
		t.Errorf("alice row %q in\n%s", aliceLine, r.stdout)
	}
	var users []admin.UserInfo
	if r := adm("", "user", "list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &users) != nil || len(users) != 2 {
		t.Fatalf("user list --json: %+v", r)
	}

	// Disable closes the door; enable opens it again.
	if r := adm("", "user", "disable", "alice"); r.code != 0 {
		t.Fatalf("disable: %+v", r)
	}
	if _, e := s.login(t, "alice", "s3cret one", false); e.GetCode() != wire.Code_CODE_USER_DISABLED {
		t.Errorf("login of a disabled user: %v", e)
	}
	if r := adm("", "user", "enable", "alice"); r.code != 0 {
		t.Fatalf("enable: %+v", r)
	}
	if r := adm("s3cret two\n", "user", "passwd", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("passwd: %+v", r)
	}
	if _, e := s.login(t, "alice", "s3cret one", false); e.GetCode() != wire.Code_CODE_BAD_CREDENTIALS {
		t.Errorf("old password still works: %v", e)
	}

	// Devices: list, revoke.
	var devs []admin.DeviceInfo
	if r := adm("", "device", "list", "alice", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &devs) != nil || len(devs) < 2 {
		t.Fatalf("device list: %+v", r)
	}
	if r := adm("", "device", "list", "alice"); r.code != 0 || !strings.Contains(r.stdout, devs[0].ID) {
		t.Errorf("device table: %+v", r)
	}
	if r := adm("", "device", "revoke", "alice", devs[0].ID); r.code != 0 {
		t.Fatalf("revoke: %+v", r)
	}
	revoked := devs[0].ID
	r = adm("", "device", "list", "alice", "--json")
	if json.Unmarshal([]byte(r.stdout), &devs) != nil {
		t.Fatalf("device list: %+v", r)
	}
	for _, d := range devs {
		if d.ID == revoked && d.Status != "revoked" {
			t.Errorf("device %s after revoke: %+v", revoked, d)
		}
	}

	if r := adm("", "user", "delete", "bob"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if _, e := s.login(t, "bob", "bob password", false); e == nil {
		t.Error("deleted user logged in")
	}
	if r := adm("", "status"); r.code != 0 || !strings.Contains(r.stdout, "localhost") {
		t.Errorf("status: %+v", r)
	}
}

func TestAdminErrorMessage(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&wire.Error{Op: "admin.UserAdd", Kind: wire.Code_CODE_BAD_REQUEST, Msg: "homeserver.UserAdd: password must be 8..1024 bytes"},
			"password must be 8..1024 bytes (bad request)"},
		{&wire.Error{Op: "admin.UserDelete", Kind: wire.Code_CODE_NOT_FOUND, Msg: "homeserver.UserDelete: homeserver.user: user not found"},
			"user not found"},
		{&wire.Error{Op: "admin.Status", Kind: wire.Code_CODE_INTERNAL, Msg: "internal"}, "internal"},
	} {
		if got := adminError(tc.err).Error(); got != tc.want {
			t.Errorf("adminError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
