package webui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/certs"
)

// TestCertificatesPublicCA: with a certificate from a public CA the page
// learns there is nothing to trust and no hash to pin; the CA page and
// file do not exist.
func TestCertificatesPublicCA(t *testing.T) {
	h, err := New(Config{Domain: "chat.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, "GET", PathCertificates, nil)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %d %v", PathCertificates, r.StatusCode, r.Header)
	}
	if got := strings.TrimSpace(string(body(t, r))); got != `{"development_ca":false,"webtransport_hashes":[]}` {
		t.Errorf("certificates.json = %s", got)
	}
	for _, p := range []string{PathCAPage, PathCAFile} {
		if r := get(t, h, "GET", p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
}

// TestCertificatesDevCA: on the development CA, certificates.json gives
// the SHA-256 of the leaf served now (for serverCertificateHashes), the
// CA page names the CA's fingerprint, the data folder's file and the
// commands to trust it, under the page's CSP, and /web/ca.pem is the
// data folder's ca.pem.
func TestCertificatesDevCA(t *testing.T) {
	dir := t.TempDir()
	m, _, err := certs.Local(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Domain: "localhost", DevCA: m, CAFile: m.CAPath()})
	if err != nil {
		t.Fatal(err)
	}
	var c Certificates
	if err := json.Unmarshal(body(t, get(t, h, "GET", PathCertificates, nil)), &c); err != nil {
		t.Fatal(err)
	}
	leaf, err := m.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.Raw)
	caSum := sha256.Sum256(m.CA().Raw)
	if !c.DevelopmentCA || len(c.WebTransportHashes) != 1 || c.WebTransportHashes[0] != hex.EncodeToString(sum[:]) ||
		c.CAPage != PathCAPage || c.CAFile != PathCAFile || c.CASHA256 != hex.EncodeToString(caSum[:]) {
		t.Fatalf("certificates.json = %+v, want the leaf's hash %x", c, sum)
	}

	r := get(t, h, "GET", PathCAPage, nil)
	page := string(body(t, r))
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || r.Header.Get("Content-Security-Policy") != CSP {
		t.Fatalf("GET %s: %d %v", PathCAPage, r.StatusCode, r.Header)
	}
	for _, want := range []string{colonHex(caSum[:]), m.CAPath(), `href="/web/ca.pem"`, `certutil -d sql:$HOME/.pki/nssdb -A -t "C,,"`,
		"update-ca-certificates", "security add-trusted-cert", "certutil -addstore -f ROOT", "Trust this CA to identify websites"} {
		if !strings.Contains(page, want) {
			t.Errorf("the CA page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "style=") {
		t.Errorf("the CA page has inline script or style")
	}
	if r := get(t, h, "GET", PathCAPage, map[string]string{"If-None-Match": r.Header.Get("ETag")}); r.StatusCode != http.StatusNotModified {
		t.Errorf("GET %s with its ETag: %d", PathCAPage, r.StatusCode)
	}

	file, err := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	r = get(t, h, "GET", PathCAFile, nil)
	if got := body(t, r); r.StatusCode != 200 || string(got) != string(file) || !strings.Contains(r.Header.Get("Content-Disposition"), "localhost-ca.pem") {
		t.Errorf("GET %s: %d %v, body equal to ca.pem: %v", PathCAFile, r.StatusCode, r.Header, string(got) == string(file))
	}
	if r := get(t, h, "HEAD", PathCertificates, nil); r.StatusCode != 200 || len(body(t, r)) != 0 {
		t.Errorf("HEAD %s: %d", PathCertificates, r.StatusCode)
	}
}

// TestHashable: browsers accept a leaf by its hash only when it is ECDSA
// P-256 and valid now for at most 14 days.
func TestHashable(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	for _, c := range []struct {
		name       string
		key        any
		from, for_ time.Duration // NotBefore = now+from, lifetime for_
		want       bool
	}{
		{"P-256, 13 days", p256, -time.Hour, 13 * day, true},
		{"P-256, exactly 14 days", p256, -time.Hour, 14 * day, true},
		{"P-256, 15 days", p256, -time.Hour, 15 * day, false},
		{"P-256, expired", p256, -20 * day, 13 * day, false},
		{"P-256, not yet valid", p256, time.Hour, 13 * day, false},
		{"P-384", p384, -time.Hour, 13 * day, false},
		{"RSA", rsaKey, -time.Hour, 13 * day, false},
	} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: now.Add(c.from), NotAfter: now.Add(c.from + c.for_)}
		var pub any
		switch k := c.key.(type) {
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, c.key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if got := hashable(leaf, now); got != c.want {
			t.Errorf("%s: hashable = %v, want %v", c.name, got, c.want)
		}
	}
}
