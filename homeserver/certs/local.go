package certs

import "crypto/x509"

// Local makes a development CA and leaf for localhost and 127.0.0.1 in
// dir (as `hearth init` does for a local server) and returns the running
// Manager and a pool holding the CA, for a client to trust. Tests and
// local tools use it to serve real TLS on the loopback.
func Local(dir string) (*Manager, *x509.CertPool, error) {
	cfg := Config{Dir: dir, Domain: "localhost", Hosts: HostsFor("localhost", "127.0.0.1:0")}
	if err := Init(cfg, Deps{}); err != nil {
		return nil, nil, err
	}
	m, err := NewManager(cfg, Deps{})
	if err != nil {
		return nil, nil, err
	}
	roots, err := LoadCAPool(m.CAPath())
	if err != nil {
		return nil, nil, err
	}
	return m, roots, nil
}
