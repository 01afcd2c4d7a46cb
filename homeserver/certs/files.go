package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// reloadCheck is how often a FileSource looks at its files' modification times.
const reloadCheck = 30 * time.Second

// FileSource serves a certificate chain and key from PEM files kept up to
// date outside Hearth (by an ACME client, say) and picks up new files
// without a restart. A replacement that cannot be loaded is logged and the
// previous certificate stays in use.
type FileSource struct {
	certPath, keyPath string
	deps              Deps

	mu       sync.Mutex
	cert     *tls.Certificate
	stamp    string // modification times of both files when loaded
	lastLook time.Time
}

// NewFileSource loads certPath (chain, leaf first) and keyPath.
func NewFileSource(certPath, keyPath string, deps Deps) (*FileSource, error) {
	f := &FileSource{certPath: certPath, keyPath: keyPath, deps: deps.withDefaults()}
	stamp, err := f.stampNow()
	if err != nil {
		return nil, err
	}
	if err := f.load(stamp); err != nil {
		return nil, err
	}
	f.lastLook = f.deps.Now()
	return f, nil
}

func (f *FileSource) stampNow() (string, error) {
	var stamp string
	for _, p := range []string{f.certPath, f.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("certs: %w", err)
		}
		stamp += fi.ModTime().Format(time.RFC3339Nano) + "/" + fmt.Sprint(fi.Size()) + ";"
	}
	return stamp, nil
}

func (f *FileSource) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(f.certPath, f.keyPath)
	if err != nil {
		return fmt.Errorf("certs: load %s and %s: %w", f.certPath, f.keyPath, err)
	}
	if f.deps.Now().After(cert.Leaf.NotAfter) {
		return fmt.Errorf("certs: %s expired on %s", f.certPath, cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	f.cert, f.stamp = &cert, stamp
	f.deps.Log.Info("loaded TLS certificate", "file", f.certPath, "subject", cert.Leaf.Subject.CommonName,
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (f *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.deps.Now()
	if now.Sub(f.lastLook) >= reloadCheck {
		f.lastLook = now
		if stamp, err := f.stampNow(); err != nil {
			f.deps.Log.Error("TLS certificate files unreadable; keeping the loaded one", "err", err)
		} else if stamp != f.stamp {
			if err := f.load(stamp); err != nil {
				f.deps.Log.Error("new TLS certificate not loaded; keeping the previous one", "err", err)
			}
		}
	}
	if now.After(f.cert.Leaf.NotAfter) {
		return nil, errors.New("certs: the TLS certificate has expired and no valid replacement was found")
	}
	return f.cert, nil
}

// TLSConfig returns a server configuration (TLS 1.3) serving the files' certificate.
func (f *FileSource) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: f.GetCertificate}
}
