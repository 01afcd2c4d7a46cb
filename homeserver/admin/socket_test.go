package admin

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"hearth/homeserver/wire"
)

// memOps is a small in-memory Ops for testing the socket in isolation.
type memOps struct {
	mu        sync.Mutex
	users     map[string]*UserInfo
	passwords map[string]string
	devices   map[string][]DeviceInfo
	audit     []AuditEntry
}

var _ Ops = (*memOps)(nil)

func newMemOps() *memOps {
	return &memOps{users: map[string]*UserInfo{}, passwords: map[string]string{}, devices: map[string][]DeviceInfo{}}
}

func (m *memOps) user(op, name string) (*UserInfo, error) {
	u, ok := m.users[name]
	if !ok {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %q", name)
	}
	return u, nil
}

func (m *memOps) UserAdd(ctx context.Context, name string, pw []byte, admin bool) (UserInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == "crash" {
		return UserInfo{}, errors.New("database file /secret/db is corrupt")
	}
	if _, ok := m.users[name]; ok {
		return UserInfo{}, wire.Errorf("mem.UserAdd", wire.Code_CODE_CONFLICT, "user %q exists", name)
	}
	u := &UserInfo{Name: name, Address: name + "@a.example", Admin: admin}
	m.users[name] = u
	m.passwords[name] = string(pw)
	m.devices[name] = []DeviceInfo{{ID: "D1", Name: "phone", Status: "active"}}
	return *u, nil
}

func (m *memOps) UserList(ctx context.Context) ([]UserInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []UserInfo
	for _, u := range m.users {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memOps) UserSetDisabled(ctx context.Context, name string, disabled bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.user("mem.UserSetDisabled", name)
	if err == nil {
		u.Disabled = disabled
	}
	return err
}

func (m *memOps) UserDelete(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.user("mem.UserDelete", name); err != nil {
		return err
	}
	delete(m.users, name)
	return nil
}

func (m *memOps) UserPasswd(ctx context.Context, name string, pw []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.user("mem.UserPasswd", name); err != nil {
		return err
	}
	m.passwords[name] = string(pw)
	return nil
}

func (m *memOps) DeviceList(ctx context.Context, name string) ([]DeviceInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.user("mem.DeviceList", name); err != nil {
		return nil, err
	}
	return slices.Clone(m.devices[name]), nil
}

func (m *memOps) DeviceRevoke(ctx context.Context, name, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ds := m.devices[name]
	for i := range ds {
		if ds[i].ID == id {
			ds[i].Status = "revoked"
			return nil
		}
	}
	return wire.Errorf("mem.DeviceRevoke", wire.Code_CODE_NOT_FOUND, "no device %q", id)
}

func (m *memOps) Status(ctx context.Context) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{Domain: "a.example", Users: len(m.users)}, nil
}

func (m *memOps) UserSetRole(ctx context.Context, name string, admin bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.user("mem.UserSetRole", name)
	if err == nil {
		u.Admin = admin
	}
	return err
}

func (m *memOps) AuditRecord(ctx context.Context, e AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.ID = int64(len(m.audit) + 1)
	m.audit = append(m.audit, e)
	return nil
}

func (m *memOps) AuditList(ctx context.Context, limit int) ([]AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AuditEntry
	for i := len(m.audit) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, m.audit[i])
	}
	return out, nil
}

// startSocket serves ops on DIR/admin.sock and returns the socket path.
func startSocket(t *testing.T, ops Ops, opts ...SocketOption) (string, *SocketServer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketFile)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ops.(AuditLog); ok {
		opts = append(opts, WithAudit(a))
	}
	s := NewSocketServer(ops, nil, opts...)
	done := make(chan struct{})
	go func() {
		if err := s.Serve(ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
		close(done)
	}()
	t.Cleanup(func() { s.Close(); <-done })
	for s.serving() == nil {
		runtime.Gosched()
	}
	return path, s
}

func (s *SocketServer) serving() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

func TestSocketOps(t *testing.T) {
	ops := newMemOps()
	path, _ := startSocket(t, ops)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	u, err := c.UserAdd(ctx, "alice", []byte("pässwörd\x00x"), true)
	if err != nil || u.Address != "alice@a.example" || !u.Admin {
		t.Fatalf("UserAdd: %+v, %v", u, err)
	}
	if ops.passwords["alice"] != "pässwörd\x00x" {
		t.Errorf("password arrived as %q", ops.passwords["alice"])
	}
	if _, err := c.UserAdd(ctx, "alice", []byte("x"), false); !wire.Is(err, wire.Code_CODE_CONFLICT) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("duplicate UserAdd: %v", err)
	}
	if _, err := c.UserAdd(ctx, "bob/../x", []byte("x"), false); err != nil {
		t.Errorf("odd name refused by the transport (the Ops decides): %v", err)
	}
	if err := c.UserSetDisabled(ctx, "alice", true); err != nil || !ops.users["alice"].Disabled {
		t.Errorf("disable: %v", err)
	}
	if err := c.UserSetDisabled(ctx, "alice", false); err != nil || ops.users["alice"].Disabled {
		t.Errorf("enable: %v", err)
	}
	if err := c.UserPasswd(ctx, "alice", []byte("new")); err != nil || ops.passwords["alice"] != "new" {
		t.Errorf("passwd: %v", err)
	}
	us, err := c.UserList(ctx)
	if err != nil || len(us) != 2 || us[0].Name != "alice" {
		t.Errorf("UserList: %+v, %v", us, err)
	}
	ds, err := c.DeviceList(ctx, "alice")
	if err != nil || len(ds) != 1 || ds[0].ID != "D1" {
		t.Errorf("DeviceList: %+v, %v", ds, err)
	}
	if err := c.DeviceRevoke(ctx, "alice", "D1"); err != nil || ops.devices["alice"][0].Status != "revoked" {
		t.Errorf("DeviceRevoke: %v", err)
	}
	if err := c.DeviceRevoke(ctx, "alice", "NOPE"); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Errorf("revoke unknown device: %v", err)
	}
	if err := c.UserDelete(ctx, "carol"); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Errorf("delete unknown user: %v", err)
	}
	if err := c.UserDelete(ctx, "alice"); err != nil || ops.users["alice"] != nil {
		t.Errorf("delete: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Domain != "a.example" || st.Users != 1 {
		t.Errorf("Status: %+v, %v", st, err)
	}
	// Internal failures arrive as INTERNAL with no detail.
	_, err = c.UserAdd(ctx, "crash", []byte("x"), false)
	if !wire.Is(err, wire.Code_CODE_INTERNAL) || strings.Contains(err.Error(), "secret") {
		t.Errorf("internal error: %v", err)
	}
	// An empty list is [] not null.
	ops.users = map[string]*UserInfo{}
	if us, err := c.UserList(ctx); err != nil || us == nil {
		t.Errorf("empty UserList: %#v, %v", us, err)
	}
}

func TestSocketRefusesBadRequests(t *testing.T) {
	path, _ := startSocket(t, newMemOps())
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		method, path string
		body         any
		code         wire.Code
	}{
		{"POST", "/v1/users", map[string]any{"name": "x", "password": "not base64!", "admin": false}, wire.Code_CODE_BAD_REQUEST},
		{"POST", "/v1/users", map[string]any{"name": "x", "root": true}, wire.Code_CODE_BAD_REQUEST},
		{"POST", "/v1/users", map[string]any{"name": strings.Repeat("x", maxBody)}, wire.Code_CODE_BAD_REQUEST},
		{"GET", "/v1/nothing", nil, wire.Code_CODE_NOT_FOUND},
	} {
		if err := c.do(ctx, "test", tc.method, tc.path, tc.body, nil); !wire.Is(err, tc.code) {
			t.Errorf("%s %s: %v, want %v", tc.method, tc.path, err, tc.code)
		}
	}
}

func TestListenSocketModeAndCleanup(t *testing.T) {
	path, s := startSocket(t, newMemOps())
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("folder holds %d entries, want only the socket", len(ents))
	}
	// A second server on the same path is refused while the first answers.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Listen: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Shutdown: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketFile)
	// A crashed server leaves its socket file behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	var ne *NotRunningError
	if _, err := Dial(path); !errors.As(err, &ne) {
		t.Fatalf("Dial to a stale socket: %v", err)
	}
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
	// A regular file is never removed.
	os.WriteFile(path, []byte("keep"), 0o600)
	if _, err := Listen(path); err == nil {
		t.Error("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("regular file changed")
	}
}

func TestDialNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketFile)
	_, err := Dial(path)
	var ne *NotRunningError
	if !errors.As(err, &ne) {
		t.Fatalf("Dial without server: %v", err)
	}
	if want := "server not running (no admin socket at " + path + ")"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

func TestListenRefusesLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	os.MkdirAll(dir, 0o700)
	if _, err := Listen(filepath.Join(dir, SocketFile)); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("Listen with a long path: %v", err)
	}
}
