package webui

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// Paths of what the page learns about the server's certificates.
const (
	// PathCertificates is the JSON the worker reads before it dials
	// WebTransport (client/transport.PathCertificates): the hashes for
	// serverCertificateHashes, and whether the server runs on its
	// development CA.
	PathCertificates = "/web/certificates.json"
	// PathCAPage explains how to trust the development CA (served only
	// when the server runs on it).
	PathCAPage = "/web/ca.html"
	// PathCAFile is the development CA's certificate (public).
	PathCAFile = "/web/ca.pem"
)

// maxHashedLifetime is the longest leaf validity browsers accept for
// WebTransport's serverCertificateHashes (two weeks).
const maxHashedLifetime = 14 * 24 * time.Hour

// DevCA is a server's development certificate authority
// (homeserver/certs.Manager).
type DevCA interface {
	// Leaf is the certificate served now.
	Leaf() (*x509.Certificate, error)
	// CA is the authority's own certificate.
	CA() *x509.Certificate
}

// Config says what the page tells about the server.
type Config struct {
	Domain string // the homeserver's domain, named on the CA page
	// DevCA is the development CA the server's leaf comes from; nil for a
	// certificate from a public CA (nothing to trust, no hashes).
	DevCA DevCA
	// CAFile is where the CA certificate lives on the server (DIR/ca.pem),
	// named on the CA page for the operator.
	CAFile string
	// Now is the clock that decides whether the leaf is current; nil: time.Now.
	Now func() time.Time
}

// Certificates is the JSON at PathCertificates.
type Certificates struct {
	// DevelopmentCA: the server's certificate comes from its own
	// development CA, which browsers do not trust until told to (CAPage).
	DevelopmentCA bool `json:"development_ca"`
	// WebTransportHashes are the hex SHA-256 of the leaves a browser may
	// accept by serverCertificateHashes (the one served now, when it is
	// ECDSA P-256 and valid for at most 14 days); empty with a public CA.
	WebTransportHashes []string `json:"webtransport_hashes"`
	CAPage             string   `json:"ca_page,omitempty"`
	CAFile             string   `json:"ca_file,omitempty"`
	CASHA256           string   `json:"ca_sha256,omitempty"`
}

// certPages serves PathCertificates, and with a development CA the CA
// page and file.
type certPages struct {
	cfg    Config
	caPEM  []byte
	caPage []byte
	caSHA  string
	caEtag string
	pgEtag string
}

//go:embed ca.html.tmpl
var caPageTemplate string

func newCertPages(cfg Config) (*certPages, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &certPages{cfg: cfg}
	if cfg.DevCA == nil {
		return p, nil
	}
	ca := cfg.DevCA.CA()
	if ca == nil {
		return nil, fmt.Errorf("webui: the development CA has no certificate")
	}
	sum := sha256.Sum256(ca.Raw)
	p.caSHA = hex.EncodeToString(sum[:])
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	tmpl, err := template.New("ca").Parse(caPageTemplate)
	if err != nil {
		return nil, fmt.Errorf("webui: CA page: %w", err)
	}
	name := "hearth-" + strings.NewReplacer("/", "-", " ", "-").Replace(cfg.Domain)
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]any{
		"Domain": cfg.Domain, "CAFile": cfg.CAFile, "Subject": ca.Subject.CommonName, "Name": name,
		"SHA256": colonHex(sum[:]), "NotAfter": ca.NotAfter.UTC().Format(time.DateOnly), "CAURL": PathCAFile,
	}); err != nil {
		return nil, fmt.Errorf("webui: CA page: %w", err)
	}
	p.caPage = b.Bytes()
	p.caEtag = `"` + p.caSHA[:32] + `"`
	ps := sha256.Sum256(p.caPage)
	p.pgEtag = `"` + hex.EncodeToString(ps[:16]) + `"`
	return p, nil
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// certificates is the current answer at PathCertificates.
func (p *certPages) certificates() Certificates {
	c := Certificates{WebTransportHashes: []string{}}
	if p.cfg.DevCA == nil {
		return c
	}
	c.DevelopmentCA, c.CAPage, c.CAFile, c.CASHA256 = true, PathCAPage, PathCAFile, p.caSHA
	leaf, err := p.cfg.DevCA.Leaf()
	if err == nil && hashable(leaf, p.cfg.Now()) {
		sum := sha256.Sum256(leaf.Raw)
		c.WebTransportHashes = append(c.WebTransportHashes, hex.EncodeToString(sum[:]))
	}
	return c
}

// hashable reports whether browsers accept leaf by its hash
// (serverCertificateHashes): ECDSA P-256, valid now, for at most 14 days.
func hashable(leaf *x509.Certificate, now time.Time) bool {
	k, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return false
	}
	return leaf.NotAfter.Sub(leaf.NotBefore) <= maxHashedLifetime && !now.Before(leaf.NotBefore) && now.Before(leaf.NotAfter)
}

// serve answers the certificate paths; false for any other path.
func (p *certPages) serve(w http.ResponseWriter, r *http.Request) bool {
	hd := w.Header()
	switch r.URL.Path {
	case PathCertificates:
		b, _ := json.Marshal(p.certificates())
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store") // the leaf is renewed every few days
		hd.Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(b)
		}
		return true
	case PathCAPage:
		p.static(w, r, p.caPage, "text/html; charset=utf-8", p.pgEtag)
		return true
	case PathCAFile:
		if p.caPEM != nil {
			hd.Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(p.cfg.Domain, `"`, "")+`-ca.pem"`)
		}
		p.static(w, r, p.caPEM, "application/x-pem-file", p.caEtag)
		return true
	}
	return false
}

func (p *certPages) static(w http.ResponseWriter, r *http.Request, body []byte, ctype, etag string) {
	if body == nil { // a public CA: nothing to trust
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}
