package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hearth/client"
	"hearth/client/store"
	ctransport "hearth/client/transport"
	"hearth/homeserver/certs/acmecert/pebbletest"
	"hearth/keys/testutil"
)

// acmeServer is one `hearth serve` whose certificate comes from Pebble.
type acmeServer struct {
	domain, dir, listen string
	srv                 *server
}

// servedCert dials the server's TCP listener as its domain, verifying
// with roots, and returns the leaf it serves.
func servedCert(addr, domain string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: domain, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// servedQUICCert is servedCert over QUIC (HTTP/3's ALPN).
func servedQUICCert(addr, domain string, roots *x509.CertPool) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, addr, &tls.Config{ServerName: domain, RootCAs: roots, NextProtos: []string{"h3"}}, nil)
	if err != nil {
		return nil, err
	}
	defer c.CloseWithError(0, "")
	return c.ConnectionState().TLS.PeerCertificates[0], nil
}

// acmeClient opens a profile whose dials verify the server by its domain
// (the certificate names the domain, not the loopback address).
func acmeClient(t *testing.T, profile string, names map[string]string, roots *x509.CertPool) *client.Client {
	t.Helper()
	dial := func(ctx context.Context, addr, _ string) (io.ReadWriteCloser, error) {
		return ctransport.Dial(ctx, addr, ctransport.DialOptions{RootCAs: roots, ServerName: names[addr]})
	}
	c, err := client.Open(client.Config{Profile: profile, Dial: dial, Groups: newGroupEngine()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receiveText waits until c has received want from from.
func receiveText(t *testing.T, c *client.Client, from, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.Receive(ctx, 300*time.Millisecond, func(m store.Message) error {
			got = append(got, m.From+":"+m.Text)
			return nil
		})
		cancel()
		if slices.Contains(got, from+":"+want) {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("receive: %v", err)
		}
	}
	t.Fatalf("did not receive %s:%q; got %q", from, want, got)
}

func sendText(t *testing.T, c *client.Client, to, text string) {
	t.Helper()
	id, err := c.Queue(to, text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx, id); err != nil {
		t.Fatalf("send %q to %s: %v", text, to, err)
	}
}

// acmeRenewedSince reports whether q is a later certificate than the one
// with serial first (a renewal happened between two dials).
func acmeRenewedSince(q *x509.Certificate, first *big.Int) bool {
	return q.SerialNumber.Cmp(first) != 0 && time.Since(q.NotBefore) < 5*time.Second
}

// TestACMEFederationE2E: two `hearth serve` processes, a.example and
// b.example, initialized with --acme against Pebble (run by the test on
// 127.0.0.1, validating TLS-ALPN-01 at 127.0.0.2 and 127.0.0.3 on the
// servers' shared port, the names resolved by the test's DNS server), get
// their certificates, and federate WITHOUT `peer add`: each discovers the
// other through https://DOMAIN/.well-known/hearth/server validated by the
// system roots plus Pebble's root (federation.extra_roots), the names
// pinned to loopback by federation.test_hosts. Messages flow both ways.
// The certificates come from Pebble's short-lived profile, so they are
// renewed while the servers run; after the renewal new connections get
// the new certificate and messages still flow both ways.
func TestACMEFederationE2E(t *testing.T) {
	skipShort(t)
	needBinary(t)
	ips := map[string]string{"a.example": "127.0.0.2", "b.example": "127.0.0.3"}
	port := strconv.Itoa(pebbletest.SharedPort(t, ips["a.example"], ips["b.example"]))
	pp, _ := strconv.Atoi(port)
	peb := pebbletest.Start(t, pebbletest.Options{TLSPort: pp, Hosts: ips, ShortLived: 15 * time.Second})

	hosts := map[string]string{}
	names := map[string]string{} // HOST:PORT -> domain
	for d, ip := range ips {
		hosts[d] = net.JoinHostPort(ip, port)
		names[hosts[d]] = d
	}
	servers := map[string]*acmeServer{}
	for _, d := range []string{"a.example", "b.example"} {
		s := &acmeServer{domain: d, dir: filepath.Join(t.TempDir(), d), listen: hosts[d]}
		out := mustHearth(t, "", "init", "--dir", s.dir, "--domain", d, "--listen", s.listen, "--acme",
			"--acme-directory", peb.Directory, "--acme-ca", peb.CAFile, "--acme-profile", "shortlived")
		if !strings.Contains(out, "ACME directory "+peb.Directory) {
			t.Fatalf("init --acme said: %s", out)
		}
		path := filepath.Join(s.dir, configFile)
		var cfg map[string]any
		b, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(b, &cfg) != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		// The published federation address is the loopback one (an ACME
		// server publishes DOMAIN:PORT by default, which only real DNS
		// would resolve).
		cfg["federation"] = map[string]any{"backoff_base": "50ms", "backoff_max": "500ms", "send_wait": "3s",
			"extra_roots": peb.RootFile, "test_hosts": hosts, "address": s.listen}
		b, _ = json.MarshalIndent(cfg, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s.srv = startServe(t, s.dir, nil, "--dir", s.dir)
		servers[d] = s
	}
	first := map[string]*big.Int{}
	for d, s := range servers {
		testutil.WaitFor(t, 30*time.Second, func() error {
			leaf, err := servedCert(s.listen, d, peb.RootPool)
			if err != nil {
				return fmt.Errorf("%s serves no certificate from Pebble yet: %v\n%s", d, err, s.srv.log())
			}
			first[d] = leaf.SerialNumber
			return nil
		})
		// The same certificate on QUIC.
		if q, err := servedQUICCert(s.listen, d, peb.RootPool); err != nil || q.SerialNumber.Cmp(first[d]) != 0 {
			if err == nil && acmeRenewedSince(q, first[d]) {
				continue // renewed between the two dials
			}
			t.Fatalf("%s over QUIC: %v, serial %v; TCP serves %x", d, err, q, first[d])
		}
		if pins := servers[d].federationPeers(t, true); len(pins) != 0 {
			t.Fatalf("%s has pinned peers %v; the test is about discovery", d, pins)
		}
	}

	a, b := servers["a.example"], servers["b.example"]
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	profiles := map[string]string{"alice@a.example": filepath.Join(t.TempDir(), "alice"), "bob@b.example": filepath.Join(t.TempDir(), "bob")}
	login := func(user, server string) *client.Client {
		c := acmeClient(t, profiles[user], names, peb.RootPool)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Login(ctx, client.LoginParams{User: user, Password: strings.TrimSpace(password(strings.Split(user, "@")[0])),
			Server: server, DeviceName: "e2e"}); err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		return c
	}
	alice, bob := login("alice@a.example", a.listen), login("bob@b.example", b.listen)
	sendText(t, alice, "bob@b.example", "hello over ACME")
	receiveText(t, bob, "alice@a.example", "hello over ACME")
	sendText(t, bob, "alice@a.example", "hi back")
	receiveText(t, alice, "bob@b.example", "hi back")
	for _, pair := range [][2]*acmeServer{{a, b}, {b, a}} {
		if got := pair[0].federationPeers(t, false); !slices.Contains(got, pair[1].domain) {
			t.Fatalf("%s lists discovered peers %v, want %s", pair[0].domain, got, pair[1].domain)
		}
		if got := pair[0].federationPeers(t, true); len(got) != 0 {
			t.Fatalf("%s has pinned peers %v", pair[0].domain, got)
		}
	}

	// Renewal: both servers swap in a new certificate without a restart.
	for d, s := range servers {
		testutil.WaitFor(t, 30*time.Second, func() error {
			leaf, err := servedCert(s.listen, d, peb.RootPool)
			if err != nil {
				return err
			}
			if leaf.SerialNumber.Cmp(first[d]) == 0 {
				return fmt.Errorf("%s still serves serial %x", d, first[d])
			}
			return nil
		})
	}
	// The same devices again, over new connections (new handshakes).
	alice.Close()
	bob.Close()
	alice, bob = acmeClient(t, profiles["alice@a.example"], names, peb.RootPool), acmeClient(t, profiles["bob@b.example"], names, peb.RootPool)
	sendText(t, alice, "bob@b.example", "after renewal")
	receiveText(t, bob, "alice@a.example", "after renewal")
	sendText(t, bob, "alice@a.example", "still here")
	receiveText(t, alice, "bob@b.example", "still here")
	for _, s := range servers {
		if strings.Contains(s.srv.log(), "level=ERROR") {
			t.Errorf("%s logged errors:\n%s", s.domain, s.srv.log())
		}
	}
}

// federationPeers lists the peers of the server that are pinned (or not).
func (s *acmeServer) federationPeers(t *testing.T, pinned bool) []string {
	t.Helper()
	var info struct {
		Peers []struct {
			Domain string `json:"domain"`
			Pinned bool   `json:"pinned"`
		} `json:"peers"`
	}
	out := mustHearth(t, "", "admin", "--dir", s.dir, "federation", "list", "--json")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("federation list: %v: %s", err, out)
	}
	var d []string
	for _, p := range info.Peers {
		if p.Pinned == pinned {
			d = append(d, p.Domain)
		}
	}
	return d
}

// TestInitACMERefusesBadInput: `hearth init --acme` refuses what cannot
// get a public certificate, with a clear error, and writes nothing.
func TestInitACMERefusesBadInput(t *testing.T) {
	skipShort(t)
	needBinary(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--acme", "--domain", "localhost"}, "cannot get a public certificate"},
		{[]string{"--acme", "--domain", "chat"}, "cannot get a public certificate"},
		{[]string{"--acme", "--domain", "chat.example.org", "--acme-directory", "http://127.0.0.1:1/dir"}, "https://"},
		{[]string{"--acme", "--domain", "chat.example.org", "--acme-ca", "/nonexistent/ca.pem"}, "--acme-ca"},
		{[]string{"--domain", "chat.example.org", "--acme-email", "ops@example.org"}, "need --acme"},
		{[]string{"--acme", "--domain", "chat.example.org", "--acme-email", "ops at example"}, "acme.email"},
	} {
		dir := filepath.Join(t.TempDir(), "srv")
		r := hearth(t, nil, "", append([]string{"init", "--dir", dir}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("init %v: exit %d, stderr %q; want an error with %q", tc.args, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("init %v created %s", tc.args, dir)
		}
	}
	// acme and operator certificate files exclude each other.
	dir := filepath.Join(t.TempDir(), "srv")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "chat.example.org", "--acme", "--acme-email", "ops@example.org")
	setConfig(t, dir, func(c map[string]any) {
		if c["acme"].(map[string]any)["email"] != "ops@example.org" {
			t.Errorf("acme section: %v", c["acme"])
		}
		c["tls_cert_file"], c["tls_key_file"] = "cert.pem", "key.pem"
	})
	if r := hearth(t, nil, "", "serve", "--dir", dir); r.code == 0 || !strings.Contains(r.stderr, "acme and tls_cert_file exclude each other") {
		t.Fatalf("serve with acme and tls_cert_file: exit %d, %s", r.code, r.stderr)
	}
}
