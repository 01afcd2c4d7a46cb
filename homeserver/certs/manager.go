package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// retryAfter is how long a Manager waits after a failed renewal before
// trying again (the old leaf keeps being served meanwhile).
const retryAfter = time.Minute

// Init prepares cfg.Dir for a server: it creates the CA unless ca.pem and
// ca.key already exist (an existing CA is kept, so clients stay valid) and
// issues a fresh leaf. A half-present CA (one file without the other) is an
// error and nothing is written.
func Init(cfg Config, deps Deps) error {
	cfg, err := cfg.validate()
	if err != nil {
		return err
	}
	deps = deps.withDefaults()
	certPath, keyPath := filepath.Join(cfg.Dir, CAFile), filepath.Join(cfg.Dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		// keep the existing CA
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		certPEM, keyPEM, err := createCA(cfg.Domain, deps)
		if err != nil {
			return err
		}
		// Key first: a CA certificate without its key would be unusable.
		if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
		if err := WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
			return err
		}
	default:
		return fmt.Errorf("certs: %s and %s must both exist or both be absent", certPath, keyPath)
	}
	a, err := loadCA(cfg.Dir)
	if err != nil {
		return err
	}
	leafPEM, err := issueLeaf(a, cfg, deps)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(cfg.Dir, LeafFile), leafPEM, 0o600)
}

// Manager serves the leaf certificate and renews it before it expires.
type Manager struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	ca   *ca

	mu        sync.Mutex
	cert      *tls.Certificate // cert.Leaf is set
	renewAt   time.Time
	nextRetry time.Time
}

// NewManager loads the CA and leaf from cfg.Dir. A missing, unreadable,
// expired or due leaf, or one that does not name cfg's hosts, is replaced
// right away. The CA must exist (see Init).
func NewManager(cfg Config, deps Deps) (*Manager, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	a, err := loadCA(cfg.Dir)
	if err != nil {
		return nil, err
	}
	deps = deps.withDefaults()
	m := &Manager{cfg: cfg, deps: deps, log: deps.Log, ca: a}
	cert, err := m.loadLeaf()
	if err == nil && coversHosts(cert.Leaf, cfg) {
		m.setLocked(cert)
	}
	if m.cert == nil || !m.deps.Now().Before(m.renewAt) {
		if err := m.renewLocked(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Manager) loadLeaf() (*tls.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(m.cfg.Dir, LeafFile))
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", LeafFile, err)
	}
	// Only a leaf of our CA counts; anything else is replaced.
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: m.pool(), CurrentTime: cert.Leaf.NotBefore.Add(backdate)}); err != nil {
		return nil, fmt.Errorf("certs: %s not issued by %s: %w", LeafFile, CAFile, err)
	}
	return &cert, nil
}

func (m *Manager) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(m.ca.cert)
	return p
}

// setLocked installs cert and computes when to renew it: when a third of
// its lifetime remains.
func (m *Manager) setLocked(cert *tls.Certificate) {
	life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore)
	m.cert = cert
	m.renewAt = cert.Leaf.NotAfter.Add(-life / 3)
	m.nextRetry = time.Time{}
}

// renewLocked issues, writes and installs a new leaf.
func (m *Manager) renewLocked() error {
	leafPEM, err := issueLeaf(m.ca, m.cfg, m.deps)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(leafPEM, leafPEM)
	if err != nil {
		return fmt.Errorf("certs: parse new leaf: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(m.cfg.Dir, LeafFile), leafPEM, 0o600); err != nil {
		return err
	}
	m.setLocked(&cert)
	m.log.Info("issued TLS leaf certificate", "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"sha256", fmt.Sprintf("%x", sha256.Sum256(cert.Leaf.Raw)))
	return nil
}

// current returns the leaf to serve, renewing it first when it is due. A
// failed renewal is logged and retried later; the old leaf is served while
// it is still valid.
func (m *Manager) current() (*tls.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.deps.Now()
	if now.Before(m.renewAt) {
		return m.cert, nil
	}
	if !now.Before(m.nextRetry) {
		if err := m.renewLocked(); err != nil {
			m.nextRetry = now.Add(retryAfter)
			m.log.Error("TLS leaf renewal failed", "err", err)
		}
	}
	if now.After(m.cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certs: the TLS leaf expired at %s and could not be renewed", m.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return m.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.current()
}

// TLSConfig returns a server configuration (TLS 1.3) serving the managed leaf.
// Callers set NextProtos for their protocol.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: m.GetCertificate}
}

// Leaf returns the leaf certificate currently served (renewing it if due).
func (m *Manager) Leaf() (*x509.Certificate, error) {
	c, err := m.current()
	if err != nil {
		return nil, err
	}
	return c.Leaf, nil
}

// CA is the development CA's certificate (what clients trust).
func (m *Manager) CA() *x509.Certificate { return m.ca.cert }

// CAPath is the CA certificate file clients pass with --ca.
func (m *Manager) CAPath() string { return filepath.Join(m.cfg.Dir, CAFile) }
