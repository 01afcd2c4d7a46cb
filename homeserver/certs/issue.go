package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the data folder.
const (
	CAFile    = "ca.pem"   // the CA certificate, given to clients
	CAKeyFile = "ca.key"   // the CA private key, mode 0600
	LeafFile  = "leaf.pem" // leaf certificate, CA certificate and leaf key, mode 0600
)

// Lifetimes.
const (
	// MaxLeafLifetime is the longest leaf validity browsers accept for
	// serverCertificateHashes (two weeks).
	MaxLeafLifetime = 14 * 24 * time.Hour
	// DefaultLeafLifetime leaves a day of margin below MaxLeafLifetime.
	DefaultLeafLifetime = 13 * 24 * time.Hour
	caLifetime          = 10 * 365 * 24 * time.Hour
	// backdate covers clients whose clocks run a little behind; it counts
	// towards the leaf's lifetime.
	backdate = time.Hour
)

// Config says which certificates to make and where they live.
type Config struct {
	Dir          string        // data folder holding CAFile, CAKeyFile, LeafFile
	Domain       string        // the homeserver's domain; names the CA, first SAN of the leaf
	Hosts        []string      // more SANs: DNS names or IP addresses (see HostsFor)
	LeafLifetime time.Duration // 0 means DefaultLeafLifetime; at most MaxLeafLifetime
}

// Deps are the clock, randomness and logger (zero values: real ones, no
// logging). Rand draws serial numbers; Go's ECDSA key generation and
// signing use crypto/rand whatever is passed.
type Deps struct {
	Now  func() time.Time
	Rand io.Reader
	Log  *slog.Logger
}

func (d Deps) withDefaults() Deps {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return d
}

func (c Config) validate() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("certs: no directory given")
	}
	if c.Domain == "" {
		return c, errors.New("certs: no domain given")
	}
	if c.LeafLifetime == 0 {
		c.LeafLifetime = DefaultLeafLifetime
	}
	if c.LeafLifetime < 2*backdate || c.LeafLifetime > MaxLeafLifetime {
		return c, fmt.Errorf("certs: leaf lifetime %v outside [%v, %v]", c.LeafLifetime, 2*backdate, MaxLeafLifetime)
	}
	return c, nil
}

// HostsFor returns the SANs a leaf needs for a server of domain listening on
// listen (HOST:PORT): the listen host, and localhost/127.0.0.1/::1 when the
// host is local or unspecified (0.0.0.0, ::, empty). The domain itself is
// always added by the leaf issuer.
func HostsFor(domain, listen string) []string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	var hosts []string
	if host != "" && host != domain {
		hosts = append(hosts, host)
	}
	ip := net.ParseIP(host)
	local := host == "" || host == "localhost" || domain == "localhost" ||
		(ip != nil && (ip.IsLoopback() || ip.IsUnspecified()))
	if local {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			if !slices.Contains(hosts, h) && h != domain {
				hosts = append(hosts, h)
			}
		}
	}
	// An unspecified address is not a name a client can dial.
	return slices.DeleteFunc(hosts, func(h string) bool {
		ip := net.ParseIP(h)
		return ip != nil && ip.IsUnspecified()
	})
}

// ca is a loaded certificate authority.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// createCA makes a new CA valid from now for caLifetime.
func createCA(domain string, d Deps) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), d.Rand)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	now := d.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(d.Rand),
		Subject:               pkix.Name{CommonName: "Hearth development CA for " + domain, Organization: []string{"Hearth " + domain}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(d.Rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// issueLeaf signs a new leaf for cfg with authority a. The returned PEM holds
// the leaf, the CA certificate and the leaf's PKCS#8 key.
func issueLeaf(a *ca, cfg Config, d Deps) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), d.Rand)
	if err != nil {
		return nil, fmt.Errorf("certs: generate leaf key: %w", err)
	}
	notBefore := d.Now().Add(-backdate)
	notAfter := notBefore.Add(cfg.LeafLifetime)
	if notAfter.After(a.cert.NotAfter) {
		return nil, fmt.Errorf("certs: the CA in %s expires %s, before the new leaf would", cfg.Dir, a.cert.NotAfter.Format(time.DateOnly))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(d.Rand),
		Subject:      pkix.Name{CommonName: cfg.Domain},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range sans(cfg) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(d.Rand, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("certs: create leaf certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode leaf key: %w", err)
	}
	var out []byte
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})...)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	return out, nil
}

// sans lists the leaf's subject alternative names: domain first, then hosts, deduplicated.
func sans(cfg Config) []string {
	out := []string{cfg.Domain}
	for _, h := range cfg.Hosts {
		h = strings.TrimSpace(h)
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// coversHosts reports whether leaf names every SAN cfg asks for.
func coversHosts(leaf *x509.Certificate, cfg Config) bool {
	for _, h := range sans(cfg) {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(leaf.DNSNames, h) {
			return false
		}
	}
	return true
}

func serial(r io.Reader) *big.Int {
	n, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// Only a failing randomness source gets here; a time-based serial
		// still keeps serials distinct per CA.
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}

// loadCA reads ca.pem and ca.key from dir.
func loadCA(dir string) (*ca, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("certs: read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: read CA key: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", CAFile, err)
	}
	key, err := parseECKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", CAKeyFile, err)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("certs: %s and %s do not form a CA key pair", CAFile, CAKeyFile)
	}
	return &ca{cert: cert, key: key}, nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseECKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ek, nil
}

// LoadCAPool reads a CA certificate file (DIR/ca.pem) into a pool, for clients.
func LoadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	return pool, nil
}
