package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
)

// Peer is where and how to reach a remote server.
type Peer struct {
	Domain  string
	Address string // HOST:PORT of its federation endpoints
	CAPEM   []byte // pinned CA (development, tests); nil: Roots
	// Roots verifies the peer when CAPEM is empty (the system roots plus
	// the operator's extra roots); nil: the system roots.
	Roots *x509.CertPool
	// PublicOnly (a discovered peer) dials only public addresses of the
	// host: a name that resolves to loopback, private or link-local
	// addresses is refused.
	PublicOnly bool
}

// PeerSource finds a remote server's address.
type PeerSource interface {
	Peer(ctx context.Context, domain string) (Peer, error)
}

// DefaultQueryTimeout bounds one query when Client.QueryTimeout is unset.
const DefaultQueryTimeout = 5 * time.Second

// ErrNoPeer means no route to a domain is known.
var ErrNoPeer = errors.New("federation: unknown peer")

// Client talks HTTP/3 to remote servers' federation endpoints.
type Client struct {
	Peers   PeerSource
	Timeout time.Duration // per transaction or signal; default 15s
	// QueryTimeout bounds one query (a device waits for it); default
	// DefaultQueryTimeout. A peer that does not answer a QUIC handshake
	// fails sooner, after the 2 s handshake timeout.
	QueryTimeout time.Duration
	// MaxMediaChunk bounds the answer to a FetchMedia that names no
	// length (the homeserver's media chunk size); 0: DefaultMaxMediaAnswer.
	MaxMediaChunk int

	mu  sync.Mutex
	rts map[string]*rt // by domain
}

type rt struct {
	peer Peer
	tr   *http3.Transport
}

// Close closes every cached connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, r := range c.rts {
		r.tr.Close()
		delete(c.rts, d)
	}
	return nil
}

func newTransport(p Peer) (*http3.Transport, error) {
	conf := &tls.Config{ServerName: p.Domain, MinVersion: tls.VersionTLS13, NextProtos: []string{http3.NextProtoH3}}
	if len(p.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(p.CAPEM) {
			return nil, fmt.Errorf("federation: CA of %s: no certificate in PEM", p.Domain)
		}
		conf.RootCAs = pool
	} else if p.Roots != nil {
		conf.RootCAs = p.Roots
	}
	tr := &http3.Transport{TLSClientConfig: conf, QUICConfig: &quic.Config{
		HandshakeIdleTimeout: 2 * time.Second, MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: 10 * time.Second}}
	if p.PublicOnly {
		tr.Dial = func(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				if PublicAddress(ip) {
					return quic.DialAddrEarly(ctx, net.JoinHostPort(ip.String(), port), tlsConf, qc)
				}
			}
			return nil, fmt.Errorf("federation: %s resolves to no public address", host)
		}
	}
	return tr, nil
}

// transport returns the HTTP/3 transport for domain, rebuilt when its
// peer entry changed.
func (c *Client) transport(ctx context.Context, domain string) (*rt, error) {
	p, err := c.Peers.Peer(ctx, domain)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rts == nil {
		c.rts = map[string]*rt{}
	}
	if r, ok := c.rts[domain]; ok && r.peer.Address == p.Address && bytes.Equal(r.peer.CAPEM, p.CAPEM) && r.peer.Roots == p.Roots {
		return r, nil
	} else if ok {
		r.tr.Close()
	}
	tr, err := newTransport(p)
	if err != nil {
		return nil, err
	}
	r := &rt{peer: p, tr: tr}
	c.rts[domain] = r
	return r, nil
}

// Reset drops the cached connection to domain (after a failure, so the
// next attempt dials afresh).
func (c *Client) Reset(domain string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rts[domain]; ok {
		r.tr.Close()
		delete(c.rts, domain)
	}
}

// Bounds on what a remote server's answer may hold (Client): a
// transaction's result carries a code and short message per envelope; a
// query's answer what it asked for.
const (
	MaxResultBytes        = 1 << 20   // TransactionResult (transactions, signals)
	MaxDeviceListBytes    = 1 << 20   // FetchDeviceList
	MaxClaimBytesPerUser  = 256 << 10 // ClaimKeyPackages, per user claimed
	DefaultMaxMediaAnswer = 16 << 20  // FetchMedia with no length and no Client.MaxMediaChunk
	answerOverhead        = 64 << 10  // codes, messages, framing
)

// queryAnswerLimit is the most an answer to sq may need.
func (c *Client) queryAnswerLimit(sq *fedwire.SignedQuery) int64 {
	q := &fedwire.Query{}
	if proto.Unmarshal(sq.GetQuery(), q) != nil {
		return answerOverhead
	}
	switch b := q.Body.(type) {
	case *fedwire.Query_FetchDeviceList:
		return MaxDeviceListBytes
	case *fedwire.Query_ClaimKeyPackages:
		return int64(len(b.ClaimKeyPackages.GetUsers()))*MaxClaimBytesPerUser + answerOverhead
	case *fedwire.Query_FetchMedia:
		n := int64(b.FetchMedia.GetLength())
		if max := int64(c.MaxMediaChunk); n == 0 || (max > 0 && n > max) {
			n = max
		}
		if n <= 0 || n > DefaultMaxMediaAnswer {
			n = DefaultMaxMediaAnswer
		}
		return n + answerOverhead
	}
	return answerOverhead
}

// signedOrigin reads the origin (field 1) of the signed message (field
// 1) of a SignedTransaction or SignedQuery, for HeaderOrigin.
func signedOrigin(m proto.Message) string {
	var inner []byte
	switch v := m.(type) {
	case *fedwire.SignedTransaction:
		inner = v.GetTransaction()
	case *fedwire.SignedQuery:
		inner = v.GetQuery()
	}
	for len(inner) > 0 {
		num, typ, n := protowire.ConsumeTag(inner)
		if n < 0 {
			return ""
		}
		inner = inner[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(inner)
			if n < 0 {
				return ""
			}
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, inner)
		if n < 0 {
			return ""
		}
		inner = inner[n:]
	}
	return ""
}

func signedKeyID(m proto.Message) string {
	switch v := m.(type) {
	case *fedwire.SignedTransaction:
		return v.GetKeyId()
	case *fedwire.SignedQuery:
		return v.GetKeyId()
	}
	return ""
}

func (c *Client) post(ctx context.Context, domain, path string, timeout time.Duration, maxAnswer int64, in, out proto.Message) error {
	r, err := c.transport(ctx, domain)
	if err != nil {
		return err
	}
	body, err := proto.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+r.peer.Address+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(HeaderOrigin, signedOrigin(in))
	req.Header.Set(HeaderKeyID, signedKeyID(in))
	req.ContentLength = int64(len(body))
	resp, err := r.tr.RoundTrip(req)
	if err != nil {
		// A request its caller gave up on (a device's session ended, a
		// lossy signal's budget ran out) says nothing about the connection;
		// dropping it would fail every other request in flight on it, the
		// durable queue's transactions included.
		if !errors.Is(ctx.Err(), context.Canceled) {
			c.Reset(domain)
		}
		return fmt.Errorf("federation: %s%s: %w", domain, path, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxAnswer {
		c.Reset(domain)
		return fmt.Errorf("federation: %s%s: answer of %d bytes over the %d this request may need", domain, path, resp.ContentLength, maxAnswer)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("federation: %s%s: read: %w", domain, path, err)
	}
	if int64(len(b)) > maxAnswer {
		return fmt.Errorf("federation: %s%s: answer over the %d bytes this request may need", domain, path, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("federation: %s%s: HTTP %d", domain, path, resp.StatusCode)
	}
	if err := proto.Unmarshal(b, out); err != nil {
		return fmt.Errorf("federation: %s%s: malformed answer: %w", domain, path, err)
	}
	return nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 15 * time.Second
	}
	return c.Timeout
}

// Send posts a signed transaction; an error means no answer was had.
func (c *Client) Send(ctx context.Context, destination string, st *fedwire.SignedTransaction) (*fedwire.TransactionResult, error) {
	res := &fedwire.TransactionResult{}
	if err := c.post(ctx, destination, PathTransaction, c.timeout(), MaxResultBytes, st, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Signal posts a signed transaction of lossy signals (PathSignal).
func (c *Client) Signal(ctx context.Context, destination string, st *fedwire.SignedTransaction) (*fedwire.TransactionResult, error) {
	res := &fedwire.TransactionResult{}
	if err := c.post(ctx, destination, PathSignal, c.timeout(), MaxResultBytes, st, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Query posts a signed query.
func (c *Client) Query(ctx context.Context, destination string, sq *fedwire.SignedQuery) (*fedwire.QueryResult, error) {
	res := &fedwire.QueryResult{}
	timeout := c.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if err := c.post(ctx, destination, PathQuery, timeout, c.queryAnswerLimit(sq), sq, res); err != nil {
		return nil, err
	}
	return res, nil
}

// FetchKeyDocument GETs the key document of p over HTTP/3.
func FetchKeyDocument(ctx context.Context, p Peer) ([]byte, error) {
	tr, err := newTransport(p)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.Address+PathKeyDocument, nil)
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("federation: key document of %s: %w", p.Domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("federation: key document of %s: HTTP %d", p.Domain, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
