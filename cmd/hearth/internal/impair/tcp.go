package impair

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tcpQueue is how many chunks of tcpChunk bytes one direction of a TCP
// connection holds before it stops reading.
const (
	tcpQueue = 64
	tcpChunk = 16 << 10
)

// TCP relays TCP connections to one upstream address.
type TCP struct {
	ln       net.Listener
	upstream *net.TCPAddr
	log      *slog.Logger
	cUp      dirCounters
	cDown    dirCounters
	done     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	cfg    Config
	start  time.Time
	conns  map[net.Conn]struct{}
	seen   int
	live   int
	closed bool
}

// NewTCP relays connections accepted on ln to upstream, impaired by cfg
// (see the package doc for what impairments mean on TCP), until Close.
// ln and upstream must be loopback addresses; the relay owns ln.
func NewTCP(ln net.Listener, upstream string, cfg Config, log *slog.Logger) (*TCP, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ua, err := net.ResolveTCPAddr("tcp", upstream)
	if err != nil {
		return nil, fmt.Errorf("impair: upstream: %w", err)
	}
	if err := loopback(ua); err != nil {
		return nil, err
	}
	if err := loopback(ln.Addr()); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &TCP{ln: ln, upstream: ua, log: log, cfg: cfg, start: time.Now(), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.accept() }()
	return r, nil
}

// Addr is the address clients connect to.
func (r *TCP) Addr() net.Addr { return r.ln.Addr() }

// Set replaces the impairment for connections accepted from now on.
func (r *TCP) Set(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg, r.start = cfg, time.Now()
	return nil
}

// Stats returns the counters; Flows counts accepted connections.
func (r *TCP) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Up: r.cUp.snapshot(), Down: r.cDown.snapshot(), Flows: r.seen, Live: r.live}
}

// Close stops accepting, closes every connection and waits for the goroutines.
func (r *TCP) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	err := r.ln.Close()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *TCP) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Warn("impair: accept", "err", err)
			}
			return
		}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.serve(c) }()
	}
}

// track registers c for Close; false when the relay is closed.
func (r *TCP) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *TCP) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *TCP) serve(client net.Conn) {
	if !r.track(client) {
		return
	}
	defer r.untrack(client)
	up, err := net.DialTCP("tcp", nil, r.upstream)
	if err != nil {
		r.log.Warn("impair: dial upstream", "err", err)
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	r.mu.Lock()
	cfg, start := r.cfg, r.start
	r.seen++
	r.live++
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.live--; r.mu.Unlock() }()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(client, up, newShaper(cfg, 1, start), &r.cUp) }()
	go func() { defer wg.Done(); r.pipe(up, client, newShaper(cfg, 2, start), &r.cDown) }()
	wg.Wait()
}

type chunk struct {
	due  time.Time
	data []byte // nil: the source ended
}

// pipe copies src to dst through a shaped, bounded queue; when src ends it
// half-closes dst after the queued data; on an error it closes both.
func (r *TCP) pipe(src, dst net.Conn, s *shaper, count *dirCounters) {
	q := make(chan chunk, tcpQueue)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		r.send(dst, src, q, count)
	}()
	defer func() { <-sent }()
	defer close(q)
	for {
		buf := make([]byte, tcpChunk)
		n, err := src.Read(buf)
		if n > 0 {
			count.in(n)
			f := s.decide(time.Now(), n, true)
			if f.lost || f.heldByBlackout {
				count.delayed.Add(1)
			}
			select {
			case q <- chunk{due: f.due, data: buf[:n]}:
			case <-r.done:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				select {
				case q <- chunk{due: time.Now()}:
				case <-r.done:
				}
			} else {
				dst.Close()
			}
			return
		}
	}
}

// send writes queued chunks to dst when due.
func (r *TCP) send(dst, src net.Conn, q <-chan chunk, count *dirCounters) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-r.done:
				return
			}
		}
		if c.data == nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			src.Close() // nobody reads any more: stop the other side too
			for range q {
			}
			return
		}
		count.out(len(c.data))
	}
}
