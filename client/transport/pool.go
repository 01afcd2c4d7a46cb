//go:build !js

package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/quic-go/quic-go"
)

// SocketPool lets many sessions in one process share UDP sockets: each
// socket (one quic.Transport) carries up to PerSocket QUIC connections.
// A load generator with 10,000 sessions then needs 10,000/PerSocket
// sockets instead of 10,000.
type SocketPool struct {
	perSocket int

	mu     sync.Mutex
	socks  []*poolSocket
	closed bool
}

type poolSocket struct {
	tr    *quic.Transport
	users int
}

// NewSocketPool returns a pool placing up to perSocket connections on each
// UDP socket (perSocket < 1 means 1).
func NewSocketPool(perSocket int) *SocketPool {
	return &SocketPool{perSocket: max(perSocket, 1)}
}

// acquire returns a socket with room for one more connection.
func (p *SocketPool) acquire() (*poolSocket, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("transport: socket pool closed")
	}
	for _, s := range p.socks {
		if s.users < p.perSocket {
			s.users++
			return s, nil
		}
	}
	uc, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, fmt.Errorf("transport: open UDP socket: %w", err)
	}
	s := &poolSocket{tr: &quic.Transport{Conn: uc}, users: 1}
	p.socks = append(p.socks, s)
	return s, nil
}

func (p *SocketPool) release(s *poolSocket) {
	p.mu.Lock()
	s.users--
	p.mu.Unlock()
}

// dial is webtransport.Transport.DialAddr for pooled sockets.
func (p *SocketPool) dial(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	s, err := p.acquire()
	if err != nil {
		return nil, err
	}
	conn, err := s.tr.DialEarly(ctx, ua, tlsConf, conf)
	if err != nil {
		p.release(s)
		return nil, err
	}
	context.AfterFunc(conn.Context(), func() { p.release(s) })
	return conn, nil
}

// Sockets returns how many UDP sockets the pool has opened.
func (p *SocketPool) Sockets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.socks)
}

// Close closes every socket and with them every connection on them.
func (p *SocketPool) Close() error {
	p.mu.Lock()
	socks := p.socks
	p.socks, p.closed = nil, true
	p.mu.Unlock()
	var errs []error
	for _, s := range socks {
		errs = append(errs, s.tr.Close(), s.tr.Conn.Close())
	}
	return errors.Join(errs...)
}
