package impair

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// UDP relays datagrams between clients and one upstream address.
type UDP struct {
	ln       *net.UDPConn
	upstream *net.UDPAddr
	log      *slog.Logger
	up, down *udpQueue
	cUp      dirCounters
	cDown    dirCounters
	done     chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	cfg      Config
	flows    map[string]*flow // by client address
	seen     int
	rebinds  int
	rebindCh chan time.Duration // tells the rebinder about a new period
	closed   bool
}

// flow is one client: its address and its current upstream socket.
type flow struct {
	client *net.UDPAddr
	last   atomic.Int64 // unix nanoseconds of the client's last datagram
	mu     sync.Mutex
	conn   *net.UDPConn
}

func (f *flow) upstream() *net.UDPConn { f.mu.Lock(); defer f.mu.Unlock(); return f.conn }

// NewUDP relays datagrams arriving on ln to upstream and the replies back,
// impaired by cfg, until Close. ln and upstream must be loopback addresses;
// the relay owns ln.
func NewUDP(ln *net.UDPConn, upstream string, cfg Config, log *slog.Logger) (*UDP, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, fmt.Errorf("impair: upstream: %w", err)
	}
	if err := loopback(ua); err != nil {
		return nil, err
	}
	if err := loopback(ln.LocalAddr()); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &UDP{ln: ln, upstream: ua, log: log, cfg: cfg, flows: map[string]*flow{},
		done: make(chan struct{}), rebindCh: make(chan time.Duration, 1)}
	r.up = newUDPQueue(cfg, 1, &r.cUp)
	r.down = newUDPQueue(cfg, 2, &r.cDown)
	r.rebindCh <- cfg.Rebind
	r.wg.Add(4)
	go func() { defer r.wg.Done(); r.up.run(r.done) }()
	go func() { defer r.wg.Done(); r.down.run(r.done) }()
	go func() { defer r.wg.Done(); r.readClients() }()
	go func() { defer r.wg.Done(); r.rebinder() }()
	return r, nil
}

// ListenUDP opens a UDP socket on a loopback addr ("127.0.0.1:0") for NewUDP.
func ListenUDP(addr string) (*net.UDPConn, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	if err := loopback(a); err != nil {
		return nil, err
	}
	return net.ListenUDP("udp", a)
}

// Addr is the address clients send to.
func (r *UDP) Addr() net.Addr { return r.ln.LocalAddr() }

// Set replaces the impairment; the blackout phase and the generators
// start again, as after NewUDP.
func (r *UDP) Set(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	r.cfg = cfg
	r.mu.Unlock()
	r.up.set(cfg)
	r.down.set(cfg)
	select {
	case <-r.rebindCh:
	default:
	}
	r.rebindCh <- cfg.Rebind
	return nil
}

// Stats returns the counters.
func (r *UDP) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Up: r.cUp.snapshot(), Down: r.cDown.snapshot(), Flows: r.seen, Live: len(r.flows), Rebinds: r.rebinds}
}

// Close stops the relay, closes every socket and waits for its goroutines.
func (r *UDP) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	err := r.ln.Close()
	for _, f := range r.flows {
		f.upstream().Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *UDP) readClients() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Warn("impair: read from clients", "err", err)
			}
			return
		}
		f := r.flow(from)
		if f == nil {
			r.cUp.in(n)
			r.cUp.overflow.Add(1)
			continue
		}
		f.last.Store(time.Now().UnixNano())
		r.up.add(buf[:n], func(b []byte) error {
			_, err := f.upstream().Write(b)
			return err
		})
	}
}

// flow returns the client's flow, making one (socket and reader) for a new
// client; nil beyond MaxFlows or after Close.
func (r *UDP) flow(client *net.UDPAddr) *flow {
	key := client.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flows[key]; f != nil {
		return f
	}
	limit := r.cfg.MaxFlows
	if limit == 0 {
		limit = DefaultMaxFlows
	}
	if r.closed || len(r.flows) >= limit {
		return nil
	}
	f := &flow{client: client}
	f.last.Store(time.Now().UnixNano())
	if err := r.dialLocked(f); err != nil {
		r.log.Warn("impair: upstream socket", "err", err)
		return nil
	}
	r.flows[key] = f
	r.seen++
	return f
}

// dialLocked gives f a new upstream socket and starts its reader. r.mu is held.
func (r *UDP) dialLocked(f *flow) error {
	c, err := net.DialUDP("udp", nil, r.upstream)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.conn = c
	f.mu.Unlock()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.readUpstream(f, c) }()
	return nil
}

// readUpstream forwards what the server sends to c back to f's client,
// until c is closed (Close or a rebind).
func (r *UDP) readUpstream(f *flow, c *net.UDPConn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-r.done:
				return
			default:
				continue // ECONNREFUSED (one per ICMP) while the server is down
			}
		}
		r.down.add(buf[:n], func(b []byte) error {
			_, err := r.ln.WriteToUDP(b, f.client)
			return err
		})
	}
}

// rebinder moves every flow to a new upstream socket each Rebind period,
// and forgets flows idle for FlowIdle.
func (r *UDP) rebinder() {
	var tick <-chan time.Time
	var t *time.Ticker
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	janitor := time.NewTicker(100 * time.Millisecond)
	defer janitor.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-janitor.C:
			r.expire(time.Now())
		case d := <-r.rebindCh:
			if t != nil {
				t.Stop()
				t, tick = nil, nil
			}
			if d > 0 {
				t = time.NewTicker(d)
				tick = t.C
			}
		case <-tick:
			r.rebindAll()
		}
	}
}

func (r *UDP) rebindAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for _, f := range r.flows {
		old := f.upstream()
		if err := r.dialLocked(f); err != nil {
			r.log.Warn("impair: rebind", "err", err)
			continue
		}
		old.Close() // the old mapping is gone: late replies to it are lost
		r.rebinds++
	}
}

// expire closes the flows whose client has been silent for FlowIdle.
func (r *UDP) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	idle := r.cfg.FlowIdle
	if idle == 0 {
		idle = DefaultFlowIdle
	}
	for key, f := range r.flows {
		if now.Sub(time.Unix(0, f.last.Load())) > idle {
			f.upstream().Close()
			delete(r.flows, key)
		}
	}
}
