package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hearth/client"
	"hearth/client/transport"
	"hearth/homeserver/admin"
)

// benchTarget is one homeserver under test: where it listens, its CA, its
// admin socket (to create users and read the online count) and its PID
// when it runs on this machine.
type benchTarget struct {
	dir, server, ca string
	pid             int
	domain          string
	limits          serverLimits
	adm             *admin.Client
}

// resolve fills the target from its data folder: DIR/serve.addr,
// DIR/ca.pem, DIR/hearth.lock (the server's PID), DIR/admin.sock.
func (t *benchTarget) resolve(ctx context.Context) error {
	if t.dir == "" {
		return errors.New("--dir is required: users are created through the server's admin socket")
	}
	if t.server == "" {
		b, err := os.ReadFile(filepath.Join(t.dir, addrFile))
		if err != nil {
			return fmt.Errorf("no running server in %s (%v); start `hearth serve --dir %s` or give --server", t.dir, err, t.dir)
		}
		t.server = strings.TrimSpace(string(b))
	}
	if t.ca == "" {
		t.ca = filepath.Join(t.dir, "ca.pem")
	}
	if t.pid == 0 {
		t.pid = lockPID(t.dir)
	}
	if cfg, err := loadServerConfig(t.dir); err == nil {
		t.limits = cfg.Limits
	}
	adm, err := admin.Dial(filepath.Join(t.dir, admin.SocketFile))
	if err != nil {
		return err
	}
	t.adm = adm
	st, err := adm.Status(ctx)
	if err != nil {
		adm.Close()
		return fmt.Errorf("admin status: %w", err)
	}
	t.domain = st.Domain
	return nil
}

// lockPID reads the PID the server wrote into DIR/hearth.lock; 0 when the
// file is missing or names no live process.
func lockPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return 0
	}
	return pid
}

// CreateUser implements loadgen.Users over the admin socket.
func (t *benchTarget) CreateUser(ctx context.Context, name string, password []byte) error {
	_, err := t.adm.UserAdd(ctx, name, password, false)
	return err
}

// online is the server's count of online sessions.
func (t *benchTarget) online(ctx context.Context) (int, error) {
	st, err := t.adm.Status(ctx)
	return st.OnlineSessions, err
}

// stages reads the server's stage histograms from its admin status.
func (t *benchTarget) stages(ctx context.Context) (map[string]admin.Histogram, error) {
	st, err := t.adm.Status(ctx)
	return st.SendStages, err
}

// benchDialer dials with shared UDP sockets and counts which protocol each
// session got, so that a silent fallback to the WebSocket is reported.
type benchDialer struct {
	pool      *transport.SocketPool
	forceWS   bool
	quicOnly  bool // native QUIC (NextProtoHearth) only
	mu        sync.Mutex
	roots     map[string]*x509.CertPool
	protocols map[string]int
}

func newBenchDialer(perSocket int, forceWS, quicOnly bool) *benchDialer {
	return &benchDialer{pool: transport.NewSocketPool(perSocket), forceWS: forceWS, quicOnly: quicOnly,
		roots: map[string]*x509.CertPool{}, protocols: map[string]int{}}
}

var _ client.DialFunc = (*benchDialer)(nil).dial

func (d *benchDialer) dial(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error) {
	roots, err := d.rootsFor(caPath)
	if err != nil {
		return nil, err
	}
	// Never a silent fallback: a WebTransport dial that fails is retried
	// by the fleet (dial_retries), not replaced by a WebSocket session.
	c, err := transport.Dial(ctx, addr, transport.DialOptions{RootCAs: roots, Sockets: d.pool,
		ForceWebSocket: d.forceWS, WebTransportOnly: !d.forceWS && !d.quicOnly, QUICOnly: d.quicOnly, QUICTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*transport.Conn); ok {
		d.mu.Lock()
		d.protocols[tc.Protocol()]++
		d.mu.Unlock()
	}
	return c, nil
}

func (d *benchDialer) rootsFor(caPath string) (*x509.CertPool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.roots[caPath]; ok {
		return p, nil
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caPath)
	}
	d.roots[caPath] = p
	return p, nil
}

// counts returns how many sessions each transport carried.
func (d *benchDialer) counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.protocols)
}

// checkTransport returns an error when any session used another transport
// than the one asked for: figures of a mixed run would be mislabelled.
func (d *benchDialer) checkTransport() error {
	want := transport.ProtocolWebTransport
	switch {
	case d.forceWS:
		want = transport.ProtocolWebSocket
	case d.quicOnly:
		want = transport.ProtocolQUIC
	}
	counts := d.counts()
	for p, n := range counts {
		if p != want && n > 0 {
			return fmt.Errorf("bench: %d sessions used %s, not the requested %s (sessions by transport: %v); the figures are not %s figures",
				n, p, want, counts, want)
		}
	}
	return nil
}

// onTmpfs reports whether path is on a tmpfs (RAM) file system.
func onTmpfs(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == 0x01021994
}
