package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Deps.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig(t *testing.T) Config {
	return Config{Dir: t.TempDir(), Domain: "chat.example", Hosts: HostsFor("chat.example", "127.0.0.1:7443")}
}

func verifyLeaf(t *testing.T, dir string, leaf *x509.Certificate, at time.Time, name string) {
	t.Helper()
	pool, err := LoadCAPool(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: at}); err != nil {
		t.Fatalf("leaf does not verify for %q at %v: %v", name, at, err)
	}
}

func TestInitCreatesCAAndLeaf(t *testing.T) {
	cfg := testConfig(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := Init(cfg, Deps{Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, LeafFile: 0o600} {
		fi, err := os.Stat(filepath.Join(cfg.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	a, err := loadCA(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.cert.Subject.CommonName, "chat.example") || a.key.Curve != elliptic.P256() {
		t.Errorf("CA subject %q curve %v", a.cert.Subject.CommonName, a.key.Curve.Params().Name)
	}
	if a.cert.NotAfter.Sub(clock.Now()) < 5*365*24*time.Hour {
		t.Errorf("CA valid only until %v", a.cert.NotAfter)
	}
	m, err := NewManager(cfg, Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := m.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > MaxLeafLifetime {
		t.Errorf("leaf valid for %v, more than %v", life, MaxLeafLifetime)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"chat.example", "localhost", "127.0.0.1", "::1"} {
		verifyLeaf(t, cfg.Dir, leaf, clock.Now(), name)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.pool(), DNSName: "other.example", CurrentTime: clock.Now()}); err == nil {
		t.Error("leaf verified for a name it does not hold")
	}
}

func TestInitKeepsExistingCA(t *testing.T) {
	cfg := testConfig(t)
	if err := Init(cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(cfg.Dir, CAFile))
	if err := Init(cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(cfg.Dir, CAFile))
	if !bytes.Equal(before, after) {
		t.Error("second Init replaced the CA")
	}
}

func TestInitRefusesHalfCA(t *testing.T) {
	cfg := testConfig(t)
	if err := Init(cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	leafBefore, _ := os.ReadFile(filepath.Join(cfg.Dir, LeafFile))
	os.Remove(filepath.Join(cfg.Dir, CAKeyFile))
	if err := Init(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("Init with ca.pem but no ca.key: err = %v", err)
	}
	leafAfter, _ := os.ReadFile(filepath.Join(cfg.Dir, LeafFile))
	if !bytes.Equal(leafBefore, leafAfter) {
		t.Error("failed Init changed leaf.pem")
	}
	if _, err := NewManager(cfg, Deps{}); err == nil {
		t.Error("NewManager without CA key succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []Config{
		{Dir: dir, Domain: "a.example", LeafLifetime: MaxLeafLifetime + time.Second},
		{Dir: dir, Domain: "a.example", LeafLifetime: time.Minute},
		{Dir: dir},
		{Domain: "a.example"},
	} {
		if err := Init(c, Deps{}); err == nil {
			t.Errorf("Init(%+v) succeeded", c)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused configs wrote %d files", len(ents))
	}
}

func TestManagerRenewsBeforeExpiry(t *testing.T) {
	cfg := testConfig(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	deps := Deps{Now: clock.Now}
	if err := Init(cfg, deps); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := m.Leaf()
	life := first.NotAfter.Sub(first.NotBefore)

	// Just before two thirds of the lifetime: same leaf.
	clock.t = first.NotBefore.Add(2*life/3 - time.Minute)
	same, _ := m.GetCertificate(nil)
	if !same.Leaf.Equal(first) {
		t.Fatal("leaf renewed too early")
	}
	// Past two thirds: a new leaf, on disk too, valid now and later.
	clock.Add(2 * time.Minute)
	renewed, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Leaf.Equal(first) {
		t.Fatal("leaf not renewed when a third of its lifetime remained")
	}
	verifyLeaf(t, cfg.Dir, renewed.Leaf, clock.Now(), "chat.example")
	verifyLeaf(t, cfg.Dir, renewed.Leaf, first.NotAfter.Add(time.Hour), "localhost")
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(cfg.Dir, LeafFile), filepath.Join(cfg.Dir, LeafFile))
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk.Leaf.Equal(renewed.Leaf) {
		t.Error("renewed leaf not written to leaf.pem")
	}
	if fi, _ := os.Stat(filepath.Join(cfg.Dir, LeafFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("renewed leaf.pem mode %v", fi.Mode().Perm())
	}
	if ents, _ := filepath.Glob(filepath.Join(cfg.Dir, ".*tmp*")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
	// A restarted manager loads the renewed leaf instead of issuing another.
	m2, err := NewManager(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := m2.Leaf(); !l.Equal(renewed.Leaf) {
		t.Error("restart replaced a leaf that was not due")
	}
}

func TestNewManagerReplacesStaleLeaf(t *testing.T) {
	cfg := testConfig(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := Init(cfg, Deps{Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	old, _ := tls.LoadX509KeyPair(filepath.Join(cfg.Dir, LeafFile), filepath.Join(cfg.Dir, LeafFile))

	// The server was down past expiry: the leaf is replaced at start.
	clock.Add(30 * 24 * time.Hour)
	m, err := NewManager(cfg, Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := m.Leaf()
	if l.Equal(old.Leaf) || !clock.Now().Before(l.NotAfter) {
		t.Error("expired leaf kept")
	}
	// The listen address changed: the leaf is replaced to name the new host.
	cfg.Hosts = append(cfg.Hosts, "10.1.2.3", "chat-alt.example")
	m, err = NewManager(cfg, Deps{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := m.Leaf()
	if l2.Equal(l) {
		t.Fatal("leaf without the new hosts kept")
	}
	verifyLeaf(t, cfg.Dir, l2, clock.Now(), "chat-alt.example")
	if !slices.ContainsFunc(l2.IPAddresses, net.ParseIP("10.1.2.3").Equal) {
		t.Error("new IP SAN missing")
	}
	// A corrupt leaf file is replaced too.
	os.WriteFile(filepath.Join(cfg.Dir, LeafFile), []byte("garbage"), 0o600)
	if _, err := NewManager(cfg, Deps{Now: clock.Now}); err != nil {
		t.Fatalf("corrupt leaf not replaced: %v", err)
	}
}

func TestTLSHandshakeWithCA(t *testing.T) {
	cfg := testConfig(t)
	if err := Init(cfg, Deps{}); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool, _ := LoadCAPool(filepath.Join(cfg.Dir, CAFile))
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake against ca.pem: %v", err)
	}
	c.Close()
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Error("handshake succeeded without the CA")
	}
}

func TestHostsFor(t *testing.T) {
	for _, tc := range []struct {
		domain, listen string
		want           []string
	}{
		{"localhost", "127.0.0.1:7443", []string{"127.0.0.1", "::1"}},
		{"chat.example", "203.0.113.5:443", []string{"203.0.113.5"}},
		{"chat.example", "0.0.0.0:443", []string{"localhost", "127.0.0.1", "::1"}},
		{"chat.example", "[::1]:443", []string{"::1", "localhost", "127.0.0.1"}},
		{"chat.example", "chat.example:443", nil},
		{"chat.example", ":443", []string{"localhost", "127.0.0.1", "::1"}},
	} {
		got := HostsFor(tc.domain, tc.listen)
		if !slices.Equal(got, tc.want) {
			t.Errorf("HostsFor(%q, %q) = %v, want %v", tc.domain, tc.listen, got, tc.want)
		}
	}
}

func TestRenewalFailureKeepsServingAndRetries(t *testing.T) {
	cfg := testConfig(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	deps := Deps{Now: clock.Now}
	if err := Init(cfg, deps); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := m.Leaf()
	before, _ := os.ReadFile(filepath.Join(cfg.Dir, LeafFile))

	// Renewal is due but the folder is gone (cannot write): the old, still
	// valid leaf is served.
	away := cfg.Dir + ".away"
	if err := os.Rename(cfg.Dir, away); err != nil {
		t.Fatal(err)
	}
	clock.t = first.NotAfter.Add(-time.Hour)
	got, err := m.GetCertificate(nil)
	if err != nil || !got.Leaf.Equal(first) {
		t.Fatalf("failed renewal: err %v, old leaf served %v", err, got != nil && got.Leaf.Equal(first))
	}
	// The folder is back, but the retry waits for retryAfter.
	if err := os.Rename(away, cfg.Dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.GetCertificate(nil); !got.Leaf.Equal(first) {
		t.Error("retried before retryAfter")
	}
	if after, _ := os.ReadFile(filepath.Join(cfg.Dir, LeafFile)); !bytes.Equal(before, after) {
		t.Error("leaf.pem changed without a renewal")
	}
	clock.Add(retryAfter)
	got, err = m.GetCertificate(nil)
	if err != nil || got.Leaf.Equal(first) {
		t.Fatalf("retry after %v did not renew: %v", retryAfter, err)
	}
	// Once the leaf has expired, a failing renewal is an error, never an
	// expired certificate, also while the next retry is not yet due.
	os.Rename(cfg.Dir, away)
	defer os.Rename(away, cfg.Dir)
	clock.t = got.Leaf.NotAfter.Add(-time.Second)
	if _, err := m.GetCertificate(nil); err != nil {
		t.Errorf("last second of validity: %v", err)
	}
	clock.Add(2 * time.Second) // expired, and within retryAfter of the failure
	if c, err := m.GetCertificate(nil); err == nil {
		t.Errorf("served an expired leaf (not after %v)", c.Leaf.NotAfter)
	}
}
