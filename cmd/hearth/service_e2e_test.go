package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/testutil"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET; it collects the datagrams hearth sends.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify.sock"), msgs: make(chan string, 64)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// expect waits for a datagram holding the line want; it returns the
// datagram.
func (n *notifySocket) expect(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return m
				}
			}
		case <-timeout:
			t.Fatalf("no %q on the notify socket", want)
		}
	}
}

// TestServeNotifiesSystemd: with NOTIFY_SOCKET set, `hearth serve` sends
// READY=1 (with a STATUS line) once it serves, and STOPPING=1 on SIGTERM;
// with --log-format json every line it logs is one JSON object.
func TestServeNotifiesSystemd(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "srv")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	n := newNotifySocket(t)
	s := startServe(t, dir, []string{"NOTIFY_SOCKET=" + n.path}, "--dir", dir, "--log-format", "json")
	ready := n.expect(t, "READY=1")
	if !strings.Contains(ready, "STATUS=serving localhost on "+s.addr) {
		t.Fatalf("READY datagram %q has no STATUS with the address %s", ready, s.addr)
	}
	if code := s.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, s.log())
	}
	n.expect(t, "STOPPING=1")
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(s.log()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		if rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
			t.Fatalf("log line without msg/level/time: %q", sc.Text())
		}
		lines++
	}
	if lines < 2 {
		t.Fatalf("%d log lines:\n%s", lines, s.log())
	}
}

// setConfig changes config.json in dir with edit.
func setConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, configFile)
	var cfg map[string]any
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	edit(cfg)
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until the server's log (read from its stderr pipe, so a
// little after the server wrote it) holds want.
func (s *server) waitLog(t *testing.T, want string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(s.log(), want) {
			return fmt.Errorf("no %q in the log:\n%s", want, s.log())
		}
		return nil
	})
}

// TestServeReloadOnSIGHUP: a logged-in session sends freely under a
// generous send limit; config.json then gets a limit of one send (burst 1,
// one per 1000 s) and log_level warn, and SIGHUP reloads it (RELOADING=1
// then READY=1 on the notify socket). The SAME session stays connected
// and its next sends are refused CODE_RATE_LIMITED; the new level hides
// the info line of a second reload. A broken config.json is refused on
// SIGHUP and the server keeps serving with the running configuration.
func TestServeReloadOnSIGHUP(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "srv")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	setConfig(t, dir, func(c map[string]any) {
		c["limits"].(map[string]any)["send_per_second"] = 1000
		c["limits"].(map[string]any)["send_burst"] = 1000
	})
	n := newNotifySocket(t)
	s := startServe(t, dir, []string{"NOTIFY_SOCKET=" + n.path}, "--dir", dir)
	n.expect(t, "READY=1")
	mustHearth(t, password("alice"), "admin", "--dir", dir, "user", "add", "alice", "--password-stdin")
	c, fr, f := s.session(t, "alice", strings.TrimSpace(password("alice")), false)
	defer c.Close()
	if f.GetLoginOk() == nil {
		t.Fatalf("login: %v", f)
	}
	fw := wire.NewFrameWriter(c, 0)
	id := uint64(10)
	// send returns the error code of one Send to a conversation that does
	// not exist: refused after the rate limit is checked.
	send := func() wire.Code {
		t.Helper()
		id++
		if err := fw.WriteMessage(&wire.ClientFrame{Id: id, Body: &wire.ClientFrame_Send{Send: &wire.Send{
			ConversationId: "nosuch@localhost", MessageId: fmt.Sprintf("m%d", id), Payload: []byte("x"),
			Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION}}}); err != nil {
			t.Fatalf("send on the session: %v", err)
		}
		for {
			var r wire.ServerFrame
			if err := fr.ReadMessage(&r); err != nil {
				t.Fatalf("the session ended: %v\n%s", err, s.log())
			}
			if r.Id != id {
				continue // a push
			}
			if r.GetError() == nil {
				t.Fatalf("a send to a missing conversation was accepted: %v", &r)
			}
			return r.GetError().Code
		}
	}
	for range 5 {
		if code := send(); code == wire.Code_CODE_RATE_LIMITED {
			t.Fatal("rate limited under the generous limit")
		}
	}

	setConfig(t, dir, func(c map[string]any) {
		c["limits"].(map[string]any)["send_per_second"] = 0.001
		c["limits"].(map[string]any)["send_burst"] = 1
		c["log_level"] = "warn"
	})
	s.cmd.Process.Signal(syscall.SIGHUP)
	n.expect(t, "RELOADING=1")
	n.expect(t, "READY=1")
	s.waitLog(t, "configuration reloaded")
	limited := 0
	for range 3 {
		if send() == wire.Code_CODE_RATE_LIMITED {
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 3 sends rate limited after the reload to burst 1, want at least 2", limited)
	}

	// A second reload at level warn: done, but its info line is not
	// logged (checked below).
	s.cmd.Process.Signal(syscall.SIGHUP)
	n.expect(t, "RELOADING=1")
	n.expect(t, "READY=1")

	// A broken configuration is refused; the server goes on.
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	n.expect(t, "READY=1")
	s.waitLog(t, "reload refused")
	// The log is ordered: what the second reload logged is in by now.
	if k := strings.Count(s.log(), "configuration reloaded"); k != 1 {
		t.Fatalf("%d reload info lines, want 1 (the second reload ran at level warn):\n%s", k, s.log())
	}
	if send() != wire.Code_CODE_RATE_LIMITED {
		t.Fatal("the limit in force changed after a refused reload")
	}
	if code := s.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, s.log())
	}
}

// TestInstallService: install-service writes (or with --dry-run prints)
// a hardened Type=notify unit for the data folder; systemd-analyze
// verify accepts it where systemd is installed; bad options are refused
// and write nothing; install.sh --systemd writes the unit for the binary
// it installed.
func TestInstallService(t *testing.T) {
	skipShort(t)
	needBinary(t)
	unit := mustHearth(t, "", "install-service", "--dry-run", "--binary", hearthBin)
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "ExecStart=" + hearthBin + " serve --dir /var/lib/hearth --log-format text",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "DynamicUser=yes", "StateDirectory=hearth",
		"ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service", "WantedBy=multi-user.target",
	} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	unitDir := t.TempDir()
	out := mustHearth(t, "", "install-service", "--unit-dir", unitDir, "--binary", hearthBin, "--name", "hearth-test")
	path := filepath.Join(unitDir, "hearth-test.service")
	if !strings.Contains(out, "wrote "+path) || !strings.Contains(out, "systemctl enable --now hearth-test") {
		t.Fatalf("install-service said: %s", out)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != unit {
		t.Fatalf("written unit differs from --dry-run (%v):\n%s", err, b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("unit mode %v, want 0644", fi.Mode().Perm())
	}
	withUser := mustHearth(t, "", "install-service", "--dry-run", "--binary", hearthBin, "--user", "hearth", "--dir", "/srv/hearth", "--log-format", "json")
	for _, want := range []string{"User=hearth", "Group=hearth", "ReadWritePaths=/srv/hearth", "--log-format json"} {
		if !strings.Contains(withUser, want) {
			t.Errorf("--user unit lacks %q:\n%s", want, withUser)
		}
	}
	if strings.Contains(withUser, "DynamicUser") || strings.Contains(withUser, "StateDirectory") {
		t.Errorf("--user unit with a dynamic user or a state directory:\n%s", withUser)
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed; the unit is not verified")
		}
		for _, p := range []string{path, writeUnit(t, withUser)} {
			out, err := exec.Command(sa, "verify", p).CombinedOutput()
			var ours []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.Contains(line, filepath.Base(p)) {
					ours = append(ours, line)
				}
			}
			if err != nil || len(ours) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", p, err, out)
			}
		}
	})

	for _, bad := range [][]string{
		{"--dir", "/srv/hearth"}, // a dynamic user needs /var/lib/NAME
		{"--dir", "relative/dir"},
		{"--binary", "hearth"},
		{"--name", "my hearth"},
		{"--log-format", "xml"},
		{"--dir", "/var/lib/hearth; rm -rf /"},
	} {
		d := t.TempDir()
		args := append([]string{"install-service", "--unit-dir", d}, bad...)
		if !slices.Contains(bad, "--binary") {
			args = append(args, "--binary", hearthBin)
		}
		r := hearth(t, nil, "", args...)
		if r.code == 0 {
			t.Errorf("install-service %v accepted:\n%s", bad, r.stdout)
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("install-service %v wrote %v", bad, ents)
		}
	}

	// install.sh --systemd passes its options to install-service.
	prefix := filepath.Join(t.TempDir(), "prefix")
	shDir := t.TempDir()
	cmd := exec.Command("bash", installScript(t), "--systemd", "--unit-dir", shDir)
	cmd.Env = append(os.Environ(), "PREFIX="+prefix)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh --systemd: %v\n%s", err, b)
	}
	b, err = os.ReadFile(filepath.Join(shDir, "hearth.service"))
	if err != nil || !strings.Contains(string(b), "ExecStart="+filepath.Join(prefix, "bin", "hearth")+" serve") {
		t.Fatalf("install.sh --systemd unit (%v):\n%s", err, b)
	}
}

func writeUnit(t *testing.T, unit string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hearth-user.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
