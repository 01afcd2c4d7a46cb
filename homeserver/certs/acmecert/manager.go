package acmecert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"hearth/homeserver/certs"
)

// LetsEncrypt is the directory used when Config.Directory is empty.
const LetsEncrypt = acme.LetsEncryptURL

// Files in Config.Dir.
const (
	AccountKeyFile = "account.key"
	CertFile       = "cert.pem"
)

// Config says which certificate to get and from where.
type Config struct {
	Dir       string   // holds account.key and cert.pem; created 0700
	Domains   []string // names on the certificate, the server's domain first
	Directory string   // ACME directory URL; "": Let's Encrypt
	Email     string   // account contact; optional
	Profile   string   // issuance profile the CA offers (e.g. "shortlived"); optional
	// RootCAs verifies the ACME server's HTTPS; nil: the system roots.
	RootCAs *x509.CertPool
	// RetryBase is the first wait after a failed issuance, doubled per
	// failure up to RetryMax. Defaults: 30s and 1h.
	RetryBase, RetryMax time.Duration
	// Timeout bounds one issuance (order, validation, download); default 2m.
	Timeout time.Duration
}

// Deps are the Manager's collaborators.
type Deps struct {
	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now
}

// Manager serves the certificate and keeps it current.
type Manager struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	key *ecdsa.PrivateKey // the account key

	cert atomic.Pointer[tls.Certificate] // Leaf set; nil until the first issuance

	mu         sync.Mutex
	challenges map[string]*tls.Certificate // lowercased domain -> TLS-ALPN-01 certificate
}

// New loads the account key (making it on first use) and the certificate
// of an earlier run, if it is still valid for cfg.Domains. It contacts
// nobody: Run does.
func New(cfg Config, deps Deps) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("acmecert: no folder")
	}
	if len(cfg.Domains) == 0 {
		return nil, errors.New("acmecert: no domain")
	}
	for i, d := range cfg.Domains {
		if err := CheckDomain(d); err != nil {
			return nil, err
		}
		cfg.Domains[i] = strings.ToLower(d)
	}
	if cfg.Directory == "" {
		cfg.Directory = LetsEncrypt
	}
	if !strings.HasPrefix(cfg.Directory, "https://") {
		return nil, fmt.Errorf("acmecert: directory %q: want an https:// URL", cfg.Directory)
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 30 * time.Second
	}
	if cfg.RetryMax < cfg.RetryBase {
		cfg.RetryMax = max(time.Hour, cfg.RetryBase)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	m := &Manager{cfg: cfg, log: deps.Log, now: deps.Now, challenges: map[string]*tls.Certificate{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("acmecert: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.Dir, AccountKeyFile))
	if err != nil {
		return nil, err
	}
	m.key = key
	b, err := os.ReadFile(filepath.Join(cfg.Dir, CertFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("acmecert: %w", err)
	default:
		c, err := ParseCertFile(b)
		if err == nil {
			err = checkLeaf(c.Leaf, cfg.Domains, m.now())
		}
		if err != nil {
			m.log.Warn("acme: the stored certificate is not used; a new one will be requested", "file", filepath.Join(cfg.Dir, CertFile), "err", err)
		} else {
			m.cert.Store(c)
		}
	}
	return m, nil
}

// CheckDomain refuses a name that no public CA can certify: IP literals,
// single labels, localhost, names with a port or wildcard.
func CheckDomain(d string) error {
	if net.ParseIP(d) != nil {
		return fmt.Errorf("acmecert: %s is an IP address; ACME needs the server's domain name", d)
	}
	if strings.ContainsAny(d, ":/*@ ") || !strings.Contains(strings.Trim(d, "."), ".") || d == "localhost" || strings.HasSuffix(d, ".localhost") {
		return fmt.Errorf("acmecert: %q is not a public domain name", d)
	}
	return nil
}

// Certificate returns the certificate served now; nil before the first
// issuance.
func (m *Manager) Certificate() *tls.Certificate { return m.cert.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("acmecert: no certificate for %s yet (ACME issuance under way)", m.cfg.Domains[0])
}

// GetConfigForClient answers a TLS-ALPN-01 validation (a ClientHello
// offering "acme-tls/1") with the challenge certificate of its server
// name; other handshakes go on with the base configuration (nil).
func (m *Manager) GetConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if !slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		return nil, nil
	}
	m.mu.Lock()
	c := m.challenges[strings.ToLower(hello.ServerName)]
	m.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("acmecert: no TLS-ALPN-01 challenge pending for %q", hello.ServerName)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c}, NextProtos: []string{acme.ALPNProto}}, nil
}

// TLSConfig serves the managed certificate and answers TLS-ALPN-01.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: m.GetCertificate, GetConfigForClient: m.GetConfigForClient}
}

// RenewAt is when a certificate is due: two thirds into its lifetime.
func RenewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life - life/3)
}

// minRenewGap is the least time between two issuances.
const minRenewGap = 2 * time.Second

// Run obtains the certificate if there is none and renews it when due,
// until ctx ends. Failures are logged and retried with a doubling delay;
// the current certificate is served meanwhile.
func (m *Manager) Run(ctx context.Context) {
	failures := 0
	issued := false
	for {
		wait := m.nextWait(failures, issued)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := m.Obtain(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			m.log.Error("acme: issuance failed; the current certificate (if any) stays in use", "domains", m.cfg.Domains,
				"directory", m.cfg.Directory, "failures", failures, "err", err)
			issued = false
			continue
		}
		failures, issued = 0, true
	}
}

// nextWait is how long Run waits before the next issuance: until the
// certificate is due (none: at once), at least minRenewGap after an
// issuance, and after failures a doubling backoff, shortened as the
// served certificate nears its expiry.
func (m *Manager) nextWait(failures int, issued bool) time.Duration {
	wait := time.Duration(0)
	if c := m.cert.Load(); c != nil {
		wait = RenewAt(c.Leaf).Sub(m.now())
	}
	if issued {
		wait = max(wait, minRenewGap) // a CA issuing ever shorter certificates is not hammered
	}
	if failures > 0 {
		retry := m.cfg.RetryBase << min(failures-1, 20)
		if retry > m.cfg.RetryMax || retry <= 0 {
			retry = m.cfg.RetryMax
		}
		// A renewal that keeps failing is retried more often as the
		// served certificate nears its expiry: at most a quarter of
		// the time left (once expired, the backoff alone).
		if c := m.cert.Load(); c != nil {
			if left := c.Leaf.NotAfter.Sub(m.now()); left > 0 {
				retry = min(retry, max(minRenewGap, left/4))
			}
		}
		wait = retry
	}
	return wait
}

// Obtain runs one issuance: account, order, TLS-ALPN-01 validation of
// every domain, finalization, and the swap to the new certificate, which
// is written to disk first.
func (m *Manager) Obtain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: m.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	defer hc.CloseIdleConnections()
	cl := &acme.Client{Key: m.key, DirectoryURL: m.cfg.Directory, HTTPClient: hc, UserAgent: "hearth"}
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if _, err := cl.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("acme account at %s: %w", m.cfg.Directory, err)
	}
	var opts []acme.OrderOption
	if m.cfg.Profile != "" {
		opts = append(opts, acme.WithOrderIssuanceProfile(acme.ProfileName(m.cfg.Profile)))
	}
	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(m.cfg.Domains...), opts...)
	if err != nil {
		return fmt.Errorf("acme order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		if err := m.authorize(ctx, cl, u); err != nil {
			return err
		}
	}
	if _, err := cl.WaitOrder(ctx, order.URI); err != nil {
		return fmt.Errorf("acme order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: m.cfg.Domains}, key)
	if err != nil {
		return err
	}
	der, _, err := cl.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return fmt.Errorf("acme finalize: %w", err)
	}
	c, err := certificate(der, key)
	if err != nil {
		return fmt.Errorf("acme certificate: %w", err)
	}
	if err := checkLeaf(c.Leaf, m.cfg.Domains, m.now()); err != nil {
		return fmt.Errorf("acme certificate: %w", err)
	}
	file, err := encodeCertFile(der, key)
	if err != nil {
		return err
	}
	if err := certs.WriteFileAtomic(filepath.Join(m.cfg.Dir, CertFile), file, 0o600); err != nil {
		return err
	}
	m.cert.Store(c)
	m.log.Info("acme: certificate installed", "domains", m.cfg.Domains, "serial", c.Leaf.SerialNumber.Text(16),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "renew_at", RenewAt(c.Leaf).UTC().Format(time.RFC3339))
	return nil
}

// authorize completes one authorization with TLS-ALPN-01.
func (m *Manager) authorize(ctx context.Context, cl *acme.Client, url string) error {
	z, err := cl.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("acme authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	if z.Status != acme.StatusPending {
		return fmt.Errorf("acme authorization of %s is %s", z.Identifier.Value, z.Status)
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "tls-alpn-01" {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("acme: the CA offers no tls-alpn-01 challenge for %s", z.Identifier.Value)
	}
	name := strings.ToLower(z.Identifier.Value)
	cert, err := cl.TLSALPN01ChallengeCert(chal.Token, name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.challenges[name] = &cert
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.challenges, name)
		m.mu.Unlock()
	}()
	if _, err := cl.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acme challenge for %s: %w", name, err)
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acme validation of %s (TLS-ALPN-01 on port 443): %w", name, err)
	}
	return nil
}

// certificate builds the served certificate from the CA's chain.
func certificate(der [][]byte, key *ecdsa.PrivateKey) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("empty chain")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the certificate is not for our key")
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// checkLeaf reports whether leaf can be served for domains at now.
func checkLeaf(leaf *x509.Certificate, domains []string, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, d := range domains {
		if err := leaf.VerifyHostname(d); err != nil {
			return err
		}
	}
	return nil
}

// encodeCertFile is cert.pem: the chain, then the key.
func encodeCertFile(der [][]byte, key *ecdsa.PrivateKey) ([]byte, error) {
	var out []byte
	for _, d := range der {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k})...), nil
}

// ParseCertFile reads cert.pem back: at least one certificate, then an
// ECDSA key that matches the first.
func ParseCertFile(b []byte) (*tls.Certificate, error) {
	var der [][]byte
	var key *ecdsa.PrivateKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if key != nil {
				return nil, errors.New("acmecert: certificate after the key")
			}
			der = append(der, blk.Bytes)
		case "EC PRIVATE KEY":
			if key != nil {
				return nil, errors.New("acmecert: two keys")
			}
			k, err := x509.ParseECPrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("acmecert: key: %w", err)
			}
			key = k
		default:
			return nil, fmt.Errorf("acmecert: unexpected PEM block %q", blk.Type)
		}
	}
	if key == nil {
		return nil, errors.New("acmecert: no key")
	}
	c, err := certificate(der, key)
	if err != nil {
		return nil, fmt.Errorf("acmecert: %w", err)
	}
	return c, nil
}

// loadOrCreateKey reads the account key, or makes and writes one.
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := certs.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("acmecert: account key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acmecert: account key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("acmecert: %s is not an EC PRIVATE KEY PEM", path)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("acmecert: account key %s: %w", path, err)
	}
	return k, nil
}
