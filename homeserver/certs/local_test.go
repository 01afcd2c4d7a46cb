package certs

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// TestLocal: the leaf Local serves for localhost verifies against the pool
// it returns.
func TestLocal(t *testing.T) {
	m, roots, err := Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Fatalf("leaf does not verify against the returned pool: %v", err)
	}
}
