package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"

	"hearth/homeserver"
	"hearth/homeserver/certs/acmecert"
)

// acmeDir is the folder of the ACME account key and certificate in the
// data folder.
const acmeDir = "acme"

// inDir resolves a configured path relative to the data folder.
func inDir(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// systemPlus is the system roots plus the PEM certificates of file.
func systemPlus(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// acmeTLS builds the ACME manager of cfg; its Run obtains and renews the
// certificate once the listeners are up (the CA validates through them).
func acmeTLS(cfg serverConfig, dir string, log *slog.Logger) (*tls.Config, func(context.Context), error) {
	a := cfg.ACME
	mc := acmecert.Config{Dir: filepath.Join(dir, acmeDir), Domains: []string{cfg.Domain}, Directory: a.Directory, Email: a.Email, Profile: a.Profile}
	if a.CAFile != "" {
		pool, err := systemPlus(inDir(dir, a.CAFile))
		if err != nil {
			return nil, nil, fmt.Errorf("acme.ca_file: %w", err)
		}
		mc.RootCAs = pool
	}
	m, err := acmecert.New(mc, acmecert.Deps{Log: log.With("component", "acme")})
	if err != nil {
		return nil, nil, err
	}
	if c := m.Certificate(); c != nil {
		log.Info("acme: serving the stored certificate", "domain", cfg.Domain, "not_after", c.Leaf.NotAfter, "renew_at", acmecert.RenewAt(c.Leaf))
	} else {
		log.Info("acme: no certificate yet; requesting one (the CA validates on port 443 of the domain)", "domain", cfg.Domain, "directory", mc.Directory)
	}
	return m.TLSConfig(), m.Run, nil
}

// discoveryConfig applies federation.extra_roots and federation.test_hosts.
func discoveryConfig(cfg serverConfig, dir string, fc *homeserver.FederationConfig, log *slog.Logger) error {
	f := cfg.Federation
	if f == nil {
		return nil
	}
	if f.ExtraRoots != "" {
		pool, err := systemPlus(inDir(dir, f.ExtraRoots))
		if err != nil {
			return fmt.Errorf("federation.extra_roots: %w", err)
		}
		fc.DiscoveryRoots = pool
	}
	if len(f.TestHosts) > 0 {
		h := newTestHosts(f.TestHosts)
		fc.Resolver, fc.DiscoveryDial = h, h.dial
		fc.DiscoverTestNames, fc.DiscoverTestAddresses = true, true
		log.Warn("federation.test_hosts is set: discovery resolves only its names, to loopback, and accepts loopback federation addresses (a test setting)",
			"names", len(f.TestHosts))
	}
	return nil
}

// testHosts answers discovery's lookups from federation.test_hosts: each
// name resolves to its own loopback address (127.0.0.2, …) whose port 443
// is the configured HOST:PORT. Nothing else resolves; nothing leaves the
// machine.
type testHosts struct {
	ips map[string]string // name -> 127.0.0.N
	to  map[string]string // 127.0.0.N:443 -> HOST:PORT
}

func newTestHosts(table map[string]string) *testHosts {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	h := &testHosts{ips: map[string]string{}, to: map[string]string{}}
	for i, n := range names {
		ip := fmt.Sprintf("127.0.%d.%d", (i+2)/250, (i+2)%250)
		h.ips[n] = ip
		h.to[net.JoinHostPort(ip, "443")] = table[n]
	}
	return h
}

func (h *testHosts) LookupHost(_ context.Context, host string) ([]string, error) {
	if ip, ok := h.ips[host]; ok {
		return []string{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host (federation.test_hosts)", Name: host, IsNotFound: true}
}

func (h *testHosts) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	to, ok := h.to[addr]
	if !ok {
		return nil, fmt.Errorf("federation.test_hosts: nothing at %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}
