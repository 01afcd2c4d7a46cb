package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble release the tests are written for; .ci/run
// installs it.
const Version = "v2.10.3"

// Find returns the pebble binary: $HEARTH_PEBBLE, else "pebble" on PATH,
// else $GOBIN or $GOPATH/bin (where `go install` puts it), else one it
// installs with `go install` into the user's cache folder (so the README's
// test command needs no set-up; the module proxy serves it).
func Find() (string, error) {
	p, err := find()
	if err == nil {
		return p, nil
	}
	cache, cerr := os.UserCacheDir()
	if cerr != nil {
		return "", err
	}
	bin := filepath.Join(cache, "hearth", "pebble-"+Version)
	p = filepath.Join(bin, "pebble")
	if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() {
		return p, nil
	}
	cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, ierr := cmd.CombinedOutput(); ierr != nil {
		return "", fmt.Errorf("%w; installing it failed: %v: %s", err, ierr, bytes.TrimSpace(out))
	}
	return p, nil
}

func find() (string, error) {
	if p := os.Getenv("HEARTH_PEBBLE"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(string(bytes.TrimSpace(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "pebble")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("pebble not found (set $HEARTH_PEBBLE or run: go install github.com/letsencrypt/pebble/v2/cmd/pebble@" + Version + ")")
}

// Options configure a Pebble.
type Options struct {
	// TLSPort is the port Pebble validates TLS-ALPN-01 at.
	TLSPort int
	// Hosts are the names Pebble's validation resolves (name -> IPv4,
	// loopback); every other name does not exist.
	Hosts map[string]string
	// ShortLived is the validity of the "shortlived" profile; default 1h.
	ShortLived time.Duration
}

// Pebble is a running Pebble on 127.0.0.1, with its own DNS server.
type Pebble struct {
	Directory string // the ACME directory URL
	// CAFile holds the CA of Pebble's own HTTPS certificate (trust it to
	// reach Directory); RootFile the root that signs issued certificates.
	CAFile, RootFile string
	CAPool, RootPool *x509.CertPool
	DNS              *DNS
}

// Start runs Pebble for the test, or skips the test (saying why) when no
// pebble binary can be found. Pebble stops when the test ends.
func Start(t testing.TB, opt Options) *Pebble {
	t.Helper()
	bin, err := Find()
	if err != nil {
		t.Skipf("skipping the ACME test: %v", err)
	}
	dir := t.TempDir()
	dns := StartDNS(t, opt.Hosts)
	caPEM, certPEM, keyPEM := pebbleTLS(t)
	p := &Pebble{CAFile: filepath.Join(dir, "pebble-https-ca.pem"), RootFile: filepath.Join(dir, "pebble-root.pem"), DNS: dns}
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("pebble-https-ca.pem", caPEM)
	p.CAPool = x509.NewCertPool()
	p.CAPool.AppendCertsFromPEM(caPEM)
	short := opt.ShortLived
	if short <= 0 {
		short = time.Hour
	}
	listen, mgmt := freeTCP(t), freeTCP(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             write("pebble-https.pem", certPEM),
		"privateKey":              write("pebble-https.key", keyPEM),
		"httpPort":                freeTCPPort(t),
		"tlsPort":                 opt.TLSPort,
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "90 days", "validityPeriod": 90 * 24 * 3600},
			"shortlived": map[string]any{"description": "for renewal tests", "validityPeriod": int(short / time.Second)},
		},
	}}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(bin, "-config", write("pebble.json", b), "-dnsserver", dns.Addr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	p.Directory = "https://" + listen + "/dir"
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CAPool}}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	var root []byte
	for {
		root, err = get(hc, "https://"+mgmt+"/roots/0")
		if err == nil {
			if _, err = get(hc, p.Directory); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	write("pebble-root.pem", root)
	p.RootPool = x509.NewCertPool()
	if !p.RootPool.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: no PEM certificate in %q", root)
	}
	return p
}

func get(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// pebbleTLS makes a CA and, signed by it, the certificate Pebble serves
// its directory with (127.0.0.1 and localhost).
func pebbleTLS(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hearth test: pebble HTTPS CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// freeTCP returns a loopback HOST:PORT nothing listens on now.
func freeTCP(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// SharedPort returns a port free for both TCP and UDP on every one of
// ips (loopback addresses), so that several servers can listen on the
// same port at different addresses, as Pebble validates one port.
func SharedPort(t testing.TB, ips ...string) int {
	t.Helper()
	for range 50 {
		port := freeTCPPort(t)
		ok := true
		var closers []io.Closer
		for _, ip := range ips {
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, ln)
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, pc)
		}
		for _, c := range closers {
			c.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free for TCP and UDP on all of %v (Linux routes all of 127.0.0.0/8 to lo; on macOS add the addresses first: sudo ifconfig lo0 alias 127.0.0.2 up)", ips)
	return 0
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not listening: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
