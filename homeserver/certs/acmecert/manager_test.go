package acmecert

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"hearth/homeserver/certs/acmecert/pebbletest"
	"hearth/keys/testutil"
)

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// serveEcho serves TLS with conf on ln: each line read is written back.
func serveEcho(ln net.Listener, conf *tls.Config) {
	tln := tls.NewListener(ln, conf)
	for {
		c, err := tln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				c.Write([]byte(line))
			}
		}()
	}
}

func echo(t *testing.T, c *tls.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(s + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != s+"\n" {
		t.Fatalf("echo %q: got %q, %v", s, got, err)
	}
}

// TestManagerObtainsAndRenewsFromPebble: a Manager behind a real TLS
// listener gets its certificate from Pebble (TLS-ALPN-01 validated by
// Pebble over loopback, the name resolved by the test's DNS server), the
// certificate verifies against Pebble's root for the domain, and with a
// short-lived profile it is renewed two thirds into its life and swapped in
// without a restart: a connection opened before the swap keeps working, a
// new one gets the new certificate. A restarted Manager reuses the stored
// certificate and account key.
func TestManagerObtainsAndRenewsFromPebble(t *testing.T) {
	const domain = "acme-unit.example"
	port := pebbletest.SharedPort(t, "127.0.0.1")
	peb := pebbletest.Start(t, pebbletest.Options{TLSPort: port, Hosts: map[string]string{domain: "127.0.0.1"}, ShortLived: 6 * time.Second})

	dir := t.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "acme"), Domains: []string{domain}, Directory: peb.Directory, RootCAs: peb.CAPool,
		Profile: "shortlived", RetryBase: 200 * time.Millisecond, Timeout: 30 * time.Second}
	m, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if m.Certificate() != nil {
		t.Fatal("a certificate before the first issuance")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conf := m.TLSConfig()
	conf.NextProtos = []string{"http/1.1"} // as the transport sets it: the challenge must still negotiate acme-tls/1
	go serveEcho(ln, conf)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	dial := func() (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{RootCAs: peb.RootPool, ServerName: domain, NextProtos: []string{"http/1.1"}})
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if m.Certificate() == nil {
			return errors.New("no certificate yet")
		}
		return nil
	})
	first := m.Certificate().Leaf
	if life := first.NotAfter.Sub(first.NotBefore); life > 10*time.Second {
		t.Fatalf("certificate valid for %v: the shortlived profile was not used", life)
	}
	old, err := dial()
	if err != nil {
		t.Fatalf("dial with Pebble's root as %s: %v", domain, err)
	}
	defer old.Close()
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("served serial %x, want %x", got, first.SerialNumber)
	}
	echo(t, old, "before renewal")

	// Renewal: a new certificate two thirds into the first one's life.
	testutil.WaitFor(t, 20*time.Second, func() error {
		if m.Certificate().Leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
			return errors.New("not renewed yet")
		}
		return nil
	})
	second := m.Certificate().Leaf
	if second.NotBefore.Before(first.NotBefore) || time.Now().Before(RenewAt(first).Add(-time.Second)) {
		t.Fatalf("renewed too early: first %v..%v, renewed at %v", first.NotBefore, first.NotAfter, time.Now())
	}
	echo(t, old, "after renewal") // the open connection is not dropped
	c, err := dial()
	if err != nil {
		t.Fatalf("dial after renewal: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) == 0 {
		t.Fatal("a new handshake still gets the first certificate")
	}
	c.Close()

	// What was stored is what a restart serves; the account key is kept.
	cancel()
	<-done
	key1, _ := os.ReadFile(filepath.Join(cfg.Dir, AccountKeyFile))
	m2, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Certificate() == nil || m2.Certificate().Leaf.SerialNumber.Cmp(m.Certificate().Leaf.SerialNumber) != 0 {
		t.Fatal("a restarted manager does not serve the stored certificate")
	}
	key2, _ := os.ReadFile(filepath.Join(cfg.Dir, AccountKeyFile))
	if string(key1) != string(key2) || len(key1) == 0 {
		t.Fatal("the account key changed")
	}
	for _, f := range []string{AccountKeyFile, CertFile} {
		if fi, err := os.Stat(filepath.Join(cfg.Dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
}

// TestManagerRefusesBadConfig: what no CA can certify is refused before
// anything is written.
func TestManagerRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"ip", Config{Domains: []string{"127.0.0.1"}}},
		{"localhost", Config{Domains: []string{"localhost"}}},
		{"single label", Config{Domains: []string{"chat"}}},
		{"wildcard", Config{Domains: []string{"*.example.org"}}},
		{"port", Config{Domains: []string{"example.org:443"}}},
		{"no domain", Config{}},
		{"plain http directory", Config{Domains: []string{"chat.example.org"}, Directory: "http://127.0.0.1:14000/dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "acme")
			tc.cfg.Dir = dir
			if _, err := New(tc.cfg, Deps{}); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(dir); err == nil {
				t.Fatal("wrote the folder")
			}
		})
	}
}

// TestGetConfigForClient: a TLS-ALPN-01 hello without a pending challenge
// is refused; an ordinary hello goes on with the base configuration.
func TestGetConfigForClient(t *testing.T) {
	m, err := New(Config{Dir: t.TempDir(), Domains: []string{"chat.example.org"}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := m.GetConfigForClient(&tls.ClientHelloInfo{ServerName: "chat.example.org", SupportedProtos: []string{"h3"}}); c != nil || err != nil {
		t.Fatalf("ordinary hello: %v %v", c, err)
	}
	if _, err := m.GetConfigForClient(&tls.ClientHelloInfo{ServerName: "chat.example.org", SupportedProtos: []string{"acme-tls/1"}}); err == nil {
		t.Fatal("acme-tls/1 without a challenge accepted")
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Fatal("a certificate before any issuance")
	}
}

// FuzzParseCertFile: cert.pem is read back without panicking, and what is
// accepted has a certificate matching its key.
func FuzzParseCertFile(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	// A valid file: a self-signed certificate and its key.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"chat.example.org"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := encodeCertFile([][]byte{der}, key)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ParseCertFile(valid); err != nil {
		f.Fatalf("a file written by encodeCertFile: %v", err)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCertFile(b)
		if err == nil && (c.Leaf == nil || len(c.Certificate) == 0) {
			t.Fatal("accepted without a leaf")
		}
	})
}

// TestNextWait: when Run tries the next issuance.
func TestNextWait(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m, err := New(Config{Dir: t.TempDir(), Domains: []string{"chat.example.org"}}, Deps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	leaf := func(notBefore time.Time, life time.Duration) *tls.Certificate {
		return &tls.Certificate{Leaf: &x509.Certificate{NotBefore: notBefore, NotAfter: notBefore.Add(life)}}
	}
	for _, tc := range []struct {
		name     string
		cert     *tls.Certificate
		failures int
		issued   bool
		want     time.Duration
	}{
		{"no certificate", nil, 0, false, 0},
		{"no certificate, 1 failure", nil, 1, false, 30 * time.Second},
		{"no certificate, 3 failures", nil, 3, false, 2 * time.Minute},
		{"no certificate, many failures", nil, 40, false, time.Hour},
		{"fresh 90 days", leaf(now, 90*day), 0, true, 60 * day},
		{"day 30 of 90", leaf(now.Add(-30*day), 90*day), 0, false, 30 * day},
		{"due, 1 failure, 30 days left", leaf(now.Add(-60*day), 90*day), 1, false, 30 * time.Second},
		{"due, 12 failures, 30 days left", leaf(now.Add(-60*day), 90*day), 12, false, time.Hour},
		{"due, failing, 2 minutes left", leaf(now.Add(-88*time.Minute), 90*time.Minute), 5, false, 30 * time.Second},
		{"due, failing, 4 s left", leaf(now.Add(-11*time.Second), 15*time.Second), 1, false, minRenewGap},
		{"expired, failing", leaf(now.Add(-100*day), 90*day), 3, false, 2 * time.Minute},
		{"issued a certificate already due", leaf(now.Add(-time.Minute), time.Minute+time.Second), 0, true, minRenewGap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.cert.Store(tc.cert)
			if got := m.nextWait(tc.failures, tc.issued); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
