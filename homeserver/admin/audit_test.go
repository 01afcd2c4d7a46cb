package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hearth/homeserver/wire"
)

var _ AuditLog = (*memOps)(nil)

// TestSocketAudit: every changing request over the socket is recorded as
// done locally, with its route, target and result; reads are not.
func TestSocketAudit(t *testing.T) {
	ops := newMemOps()
	path, _ := startSocket(t, ops)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.UserAdd(ctx, "alice", []byte("secret-pw"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserAdd(ctx, "alice", []byte("secret-pw"), false); !wire.Is(err, wire.Code_CODE_CONFLICT) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := c.UserSetRole(ctx, "alice", true); err != nil || !ops.users["alice"].Admin {
		t.Fatalf("role: %v", err)
	}
	if err := c.UserSetRole(ctx, "alice", false); err != nil || ops.users["alice"].Admin {
		t.Fatalf("role back: %v", err)
	}
	if _, err := c.UserList(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := c.AuditList(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action, target, code string
		status               int
	}{
		{"PUT /v1/users/{name}/role", "name=alice role=user", "", 204},
		{"PUT /v1/users/{name}/role", "name=alice role=admin", "", 204},
		{"POST /v1/users", "name=alice", "CODE_CONFLICT", 409},
		{"POST /v1/users", "name=alice", "", 201},
	}
	if len(es) != len(want) {
		t.Fatalf("audit has %d entries, want %d: %+v", len(es), len(want), es)
	}
	for i, w := range want {
		e := es[i]
		if e.Via != ViaSocket || e.Actor != ActorLocal || e.Action != w.action || e.Target != w.target || e.Code != w.code || e.Status != w.status || e.AtMs == 0 {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
		if strings.Contains(e.Target, "secret") {
			t.Errorf("entry %d holds the password: %+v", i, e)
		}
	}
	if es, err := c.AuditList(ctx, 1); err != nil || len(es) != 1 {
		t.Errorf("limit 1: %d entries, %v", len(es), err)
	}
	if err := c.UserSetRole(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if err := c.do(ctx, "t", http.MethodPut, userPath("alice", "role"), roleRequest{Role: "root"}, nil); !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
		t.Errorf("role root: %v", err)
	}
}

// tokenAuthz accepts "admin-token" as an admin and "user-token" as a
// non-admin; anything else is no token at all.
type tokenAuthz struct{}

func (tokenAuthz) AuthorizeAdmin(ctx context.Context, tok string) (string, error) {
	switch tok {
	case "admin-token":
		return "root@a.example/DEV1", nil
	case "user-token":
		return "bob@a.example/DEV2", wire.Errorf("t", wire.Code_CODE_FORBIDDEN, "bob is not an admin")
	}
	return "", wire.Errorf("t", wire.Code_CODE_UNAUTHENTICATED, "invalid access token")
}

// TestRESTHandler: the socket's routes under PathREST, refused without a
// token (401, not recorded) and for a non-admin (403, recorded), served
// and recorded for an admin, with the same client code as the socket.
func TestRESTHandler(t *testing.T) {
	ops := newMemOps()
	srv := httptest.NewTLSServer(NewRESTHandler(ops, tokenAuthz{}, ops, nil))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	dial := func(tok string) *Client {
		c, err := DialREST(addr, tlsConf, func(context.Context) (string, error) { return tok, nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := context.Background()

	// No token at all.
	rsp, err := srv.Client().Get(srv.URL + PathREST + "/users")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusUnauthorized || rsp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %s", rsp.Status)
	}
	if _, err := dial("forged").UserList(ctx); !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
		t.Errorf("bad token: %v", err)
	}
	if _, err := dial("user-token").UserAdd(ctx, "eve", []byte("pw"), true); !wire.Is(err, wire.Code_CODE_FORBIDDEN) || !strings.Contains(err.Error(), "not an admin") {
		t.Errorf("non-admin: %v", err)
	}
	if len(ops.users) != 0 {
		t.Fatalf("a refused request changed something: %+v", ops.users)
	}
	adm := dial("admin-token")
	if _, err := adm.UserAdd(ctx, "carol", []byte("pw"), false); err != nil {
		t.Fatalf("admin UserAdd: %v", err)
	}
	if err := adm.UserSetDisabled(ctx, "carol", true); err != nil || !ops.users["carol"].Disabled {
		t.Fatalf("admin disable: %v", err)
	}
	if _, err := adm.UserList(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := adm.AuditList(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Newest first: list, disable, add, the refused add; the 401s are not there.
	want := []struct{ actor, action, target string }{
		{"root@a.example/DEV1", "GET /v1/users", ""},
		{"root@a.example/DEV1", "POST /v1/users/{name}/disable", "name=carol"},
		{"root@a.example/DEV1", "POST /v1/users", "name=carol"},
		{"bob@a.example/DEV2", "POST /v1/users", ""},
	}
	if len(es) != len(want) {
		t.Fatalf("audit: %+v", es)
	}
	for i, w := range want {
		e := es[i]
		if e.Via != ViaREST || e.Actor != w.actor || e.Action != w.action || e.Target != w.target || e.Remote == "" {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
	}
	if es[3].Status != http.StatusForbidden || es[3].Code != "CODE_FORBIDDEN" {
		t.Errorf("refusal recorded as %+v", es[3])
	}
	// A path outside the admin routes is refused after authorization too.
	if err := adm.do(ctx, "t", http.MethodGet, "/nothing", nil, nil); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Errorf("unknown route: %v", err)
	}
}

// TestDialRESTBadAddress: the server address must be HOST:PORT.
func TestDialRESTBadAddress(t *testing.T) {
	if _, err := DialREST("no-port", nil, nil); err == nil {
		t.Error("DialREST accepted an address without a port")
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"POST /v1/users/alice/disable": "POST /v1/users/alice/disable",
		"name=\x1b[2Jx\n":              "name=?[2Jx?",
		"name=zoë":                     "name=zoë",
		"bad\xffutf8":                  "bad?utf8",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := printable(strings.Repeat("a", 2000)); len(got) > maxAuditField+len("…") {
		t.Errorf("a long field kept %d bytes", len(got))
	}
}

// TestStatusRecorderUnwraps: routes behind the audit recorder still reach
// the connection (the backup route clears its deadlines and streams).
func TestStatusRecorderUnwraps(t *testing.T) {
	w := httptest.NewRecorder()
	rec := &statusRecorder{ResponseWriter: w}
	if err := http.NewResponseController(rec).Flush(); err != nil || !w.Flushed {
		t.Fatalf("Flush through the recorder: %v", err)
	}
}
