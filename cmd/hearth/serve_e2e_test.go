package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctransport "hearth/client/transport"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
	"hearth/keys/testutil"
)

// hearthBin is the hearth binary built once for all end-to-end tests of
// this package (TestMain). Other e2e tests in cmd/hearth use it too. It is
// not built under -short, where those tests skip (skipShort).
var hearthBin string

// skipShort skips an end-to-end test under -short: `go test -short ./...`
// is the fast loop (README), the full run keeps every test.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: end-to-end test of the real binary")
	}
}

// parallelE2E is skipShort for the long end-to-end tests that mostly wait
// (on schedules, impaired links, federation retries): they run side by side,
// e2eParallel at a time, after the others, so the package's wall time stays
// well inside CI's budget. Each has its own servers, folders and ports.
func parallelE2E(t *testing.T) {
	t.Helper()
	skipShort(t)
	t.Parallel()
}

// e2eParallel is how many parallelE2E tests run at once unless -test.parallel
// is given: they wait far more than they compute, so more than the default
// (GOMAXPROCS) fit on a 2-core machine.
const e2eParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", fmt.Sprint(e2eParallel)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// The binary's chat commands use the OS keyring where a D-Bus session
	// reaches one; tests never touch the developer's own keyring (the
	// keyring test starts a private one).
	os.Unsetenv("DBUS_SESSION_BUS_ADDRESS")
	if testing.Short() {
		os.Exit(m.Run())
	}
	tmp, err := os.MkdirTemp("", "hearth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hearthBin = filepath.Join(tmp, "hearth")
	out, err := exec.Command("go", "build", "-o", hearthBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// needBinary fails a test that runs the binary without skipShort.
func needBinary(t *testing.T) {
	t.Helper()
	if hearthBin == "" {
		t.Fatal("the hearth binary is not built under -short: this test must call skipShort first")
	}
}

// result is a finished hearth invocation.
type result struct {
	stdout, stderr string
	code           int
}

// hearth runs the binary with args and stdin (may be ""), env added to os.Environ.
func hearth(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(hearthBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run hearth %v: %v", args, err)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("hearth %v printed a stack trace:\n%s", args, r.stderr)
	}
	return r
}

// mustHearth runs hearth and fails the test unless it exits 0.
func mustHearth(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := hearth(t, nil, stdin, args...)
	if r.code != 0 {
		t.Fatalf("hearth %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// server is a running `hearth serve`.
type server struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.Write(p)
}
func (s *server) log() string { s.mu.Lock(); defer s.mu.Unlock(); return s.stderr.String() }

// startServe starts `hearth serve` with args and waits for DIR/serve.addr
// written by the new process.
func startServe(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	needBinary(t)
	// A server killed with SIGKILL leaves its serve.addr behind; the new
	// one removes it, but must not be taken for up before that.
	if err := os.Remove(filepath.Join(dir, addrFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	s := &server{dir: dir, done: make(chan error, 1)}
	s.cmd = exec.Command(hearthBin, append([]string{"serve"}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	testutil.WaitFor(t, 60*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, addrFile))
		if err == nil && len(b) > 0 {
			s.addr = strings.TrimSpace(string(b))
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err // for the cleanup
			t.Fatalf("hearth serve exited (%v):\n%s", err, s.log())
		default:
		}
		return fmt.Errorf("hearth serve wrote no %s:\n%s", addrFile, s.log())
	})
	return s
}

// stop sends sig and waits for the process; it returns the exit code.
func (s *server) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("hearth serve did not stop on %v:\n%s", sig, s.log())
		return -1
	}
}

func (s *server) httpsGet(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+s.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.do(t, req)
}

// do sends req over HTTPS trusting the server's CA and reads the body.
func (s *server) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	pool, err := certs.LoadCAPool(filepath.Join(s.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	rsp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rsp.Body)
	return rsp, buf.Bytes()
}

// session logs in over the real client transport and returns the open
// connection with the server's answer; the caller closes it.
func (s *server) session(t *testing.T, user, password string, forceWS bool) (io.ReadWriteCloser, *wire.FrameReader, *wire.ServerFrame) {
	t.Helper()
	pool, err := certs.LoadCAPool(filepath.Join(s.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ctransport.Dial(ctx, s.addr, ctransport.DialOptions{RootCAs: pool, ForceWebSocket: forceWS})
	if err != nil {
		t.Fatalf("dial %s: %v", s.addr, err)
	}
	fw, fr := wire.NewFrameWriter(c, 0), wire.NewFrameReader(c, 0)
	if err := fw.WriteMessage(&wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Login{Login: &wire.Login{
		User: user, Password: password, DeviceName: "e2e", LinkPublicKey: bytes.Repeat([]byte{9}, 32)}}}); err != nil {
		t.Fatal(err)
	}
	var f wire.ServerFrame
	if err := fr.ReadMessage(&f); err != nil {
		t.Fatalf("read login answer: %v", err)
	}
	return c, fr, &f
}

// login logs in and closes the session; it returns the server's answer.
func (s *server) login(t *testing.T, user, password string, forceWS bool) (*wire.LoginOK, *wire.ErrorInfo) {
	t.Helper()
	c, _, f := s.session(t, user, password, forceWS)
	c.Close()
	return f.GetLoginOk(), f.GetError()
}

// readToEnd reads frames until the stream ends; it returns the last
// SessionClosed seen and the error other than EOF that ended the stream.
func readToEnd(fr *wire.FrameReader) (*wire.SessionClosed, error) {
	var closed *wire.SessionClosed
	for {
		var f wire.ServerFrame
		if err := fr.ReadMessage(&f); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return closed, err
		}
		if f.GetClosed() != nil {
			closed = f.GetClosed()
		}
	}
}

func TestServeInitAdminAndShutdown(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	out := mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	if !strings.Contains(out, filepath.Join(dir, "ca.pem")) {
		t.Errorf("init output does not name the CA: %q", out)
	}
	for name, perm := range map[string]os.FileMode{".": 0o700, configFile: 0o600, signingKeyFile: 0o600, fedKeyFile: 0o600,
		certs.CAKeyFile: 0o600, certs.LeafFile: 0o600, certs.CAFile: 0o644, databaseFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("after init: %v", err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), perm)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, databaseFile)); err != nil {
		t.Errorf("no database after init: %v", err)
	}

	s := startServe(t, dir, nil, "--dir", dir)
	for _, want := range []string{"hearth serving", "ca=" + filepath.Join(dir, "ca.pem"), s.addr} {
		if !strings.Contains(s.log(), want) {
			t.Errorf("serve log lacks %q:\n%s", want, s.log())
		}
	}
	rsp, body := s.httpsGet(t, "/healthz")
	var h map[string]any
	json.Unmarshal(body, &h)
	if rsp.StatusCode != 200 || h["status"] != "ok" || h["domain"] != "localhost" {
		t.Errorf("healthz: %d %s", rsp.StatusCode, body)
	}
	if !strings.HasPrefix(rsp.Header.Get("Alt-Svc"), `h3=":`) {
		t.Errorf("Alt-Svc %q", rsp.Header.Get("Alt-Svc"))
	}

	// A second server on the same folder is refused.
	if r := hearth(t, nil, "", "serve", "--dir", dir); r.code == 0 || !strings.Contains(r.stderr, "another hearth server") {
		t.Errorf("second serve: exit %d, %s", r.code, r.stderr)
	}

	adminCommands(t, s)

	// Live sessions are told the server is going away, then closed.
	wtConn, wtReader, _ := s.session(t, "alice", "s3cret two", false)
	defer wtConn.Close()
	wsConn, wsReader, _ := s.session(t, "alice", "s3cret two", true)
	defer wsConn.Close()
	// Clients read all the time; a WebTransport session that ends drops
	// what its streams had not yet delivered to the reader.
	goodbyes := make(chan func(), 2)
	type stream struct {
		c  io.Closer
		fr *wire.FrameReader
	}
	for name, st := range map[string]stream{"webtransport": {wtConn, wtReader}, "websocket": {wsConn, wsReader}} {
		go func() {
			closed, err := readToEnd(st.fr)
			st.c.Close() // as a client does on EOF: ends the session at once
			goodbyes <- func() {
				if err != nil {
					t.Errorf("%s: stream ended with %v, want EOF", name, err)
				}
				if closed.GetCode() != wire.Code_CODE_UNAVAILABLE {
					t.Errorf("%s: no SessionClosed(UNAVAILABLE) before EOF, got %v", name, closed)
				}
			}
		}()
	}
	if code := s.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exit %d after SIGTERM:\n%s", code, s.log())
	}
	if !strings.Contains(s.log(), "stopped") {
		t.Errorf("no clean stop in log:\n%s", s.log())
	}
	(<-goodbyes)()
	(<-goodbyes)()
	for _, f := range []string{"admin.sock", addrFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after shutdown: %v", f, err)
		}
	}

	// Admin against the stopped server says so plainly.
	r := hearth(t, nil, "", "admin", "--dir", dir, "user", "list")
	want := "hearth: server not running (no admin socket at " + filepath.Join(dir, "admin.sock") + ")\n"
	if r.code == 0 || r.stderr != want {
		t.Errorf("admin with server stopped: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}

	// The data survives a restart.
	s = startServe(t, dir, nil, "--dir", dir)
	if ok, e := s.login(t, "alice", "s3cret two", false); ok == nil {
		t.Errorf("login after restart: %v", e)
	}
	if code := s.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("serve exit %d after SIGINT", code)
	}
}

func TestServeDefaultDirInitializesOnFirstRun(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "default")
	env := []string{"HEARTH_DIR=" + dir}
	s := startServe(t, dir, env, "--listen", "127.0.0.1:0")
	if !strings.Contains(s.log(), "initialized data folder") {
		t.Errorf("first run did not report initializing:\n%s", s.log())
	}
	cfg, err := loadServerConfig(dir)
	if err != nil || cfg.Domain != "localhost" || cfg.Listen != defaultListen {
		t.Errorf("default config %+v, %v", cfg, err)
	}
	r := hearth(t, env, "", "admin", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "localhost") {
		t.Errorf("admin status on the default folder: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if code := s.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestInitRefusesBadInputAndExistingFolder(t *testing.T) {
	skipShort(t)
	base := t.TempDir()
	for _, args := range [][]string{
		{"--domain", "Bad Domain"},
		{"--domain", "a@b"},
		{"--listen", "nohostport"},
	} {
		dir := filepath.Join(base, "bad")
		r := hearth(t, nil, "", append([]string{"init", "--dir", dir}, args...)...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "hearth: ") {
			t.Errorf("init %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("init %v created the folder", args)
		}
	}
	dir := filepath.Join(base, "ok")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	before, _ := os.ReadFile(filepath.Join(dir, signingKeyFile))
	r := hearth(t, nil, "", "init", "--dir", dir, "--domain", "other.example")
	if r.code == 0 || !strings.Contains(r.stderr, "already initialized") {
		t.Errorf("second init: exit %d, %q", r.code, r.stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, signingKeyFile))
	if !bytes.Equal(before, after) {
		t.Error("second init changed the signing key")
	}
	if r := hearth(t, nil, "", "serve", "--dir", filepath.Join(base, "never")); r.code == 0 || !strings.Contains(r.stderr, "hearth init") {
		t.Errorf("serve of an uninitialized folder: exit %d, %q", r.code, r.stderr)
	}
}

func TestDialableAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:7443":   "127.0.0.1:7443",
		"[::]:7443":      "[::1]:7443",
		"10.0.0.5:7443":  "10.0.0.5:7443",
		"127.0.0.1:9000": "127.0.0.1:9000",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialableAddr(a); got != want {
			t.Errorf("dialableAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestServeWithOperatorCertificate(t *testing.T) {
	skipShort(t)
	base := t.TempDir()
	// Another folder's CA stands in for a public CA; its leaf (for
	// localhost) is the operator's certificate.
	other := filepath.Join(base, "other")
	mustHearth(t, "", "init", "--dir", other, "--listen", "127.0.0.1:0")
	dir := filepath.Join(base, "data")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	cfg, err := loadServerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CertFile = filepath.Join(other, certs.LeafFile)
	cfg.KeyFile = cfg.CertFile
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, configFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--dir", dir)
	if !strings.Contains(s.log(), "public certificate") {
		t.Errorf("log does not say which certificate is used:\n%s", s.log())
	}
	// Trusting the operator's CA works; the data folder's own CA does not.
	s.dir = other
	if rsp, _ := s.httpsGet(t, "/healthz"); rsp.StatusCode != 200 {
		t.Errorf("healthz with the operator's CA: %d", rsp.StatusCode)
	}
	// The web client has nothing to trust and no leaf to pin by hash.
	if rsp, body := s.httpsGet(t, "/web/certificates.json"); rsp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"development_ca":false,"webtransport_hashes":[]}` {
		t.Errorf("certificates.json with the operator's certificate: %d %s", rsp.StatusCode, body)
	}
	if rsp, _ := s.httpsGet(t, "/web/ca.html"); rsp.StatusCode != http.StatusNotFound {
		t.Errorf("the development CA's page with the operator's certificate: %d, want 404", rsp.StatusCode)
	}
	pool, _ := certs.LoadCAPool(filepath.Join(dir, certs.CAFile))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, err := c.Get("https://" + s.addr + "/healthz"); err == nil {
		t.Error("the development CA is still served")
	}
	s.stop(t, syscall.SIGTERM)
}

func TestServeRefusesBusyPortAndBadFlags(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := hearth(t, nil, "", "serve", "--dir", dir, "--listen", busy.LocalAddr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("serve on a busy port: exit %d, %q", r.code, r.stderr)
	}
	// The failed start released the folder: a later start works.
	s := startServe(t, dir, nil, "--dir", dir)
	s.stop(t, syscall.SIGTERM)

	for _, args := range [][]string{{"bogus"}, {"serve", "--no-such-flag"}, {"admin", "user", "add"}} {
		r := hearth(t, nil, "", args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "hearth: ") {
			t.Errorf("hearth %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}
