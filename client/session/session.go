package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"hearth/homeserver/wire"
)

// Tokens holds the device's credentials across runs.
type Tokens interface {
	Tokens() (access string, expires time.Time, refresh string, err error)
	// Rotate replaces the access token stale: unless another user of the
	// same tokens (another run on the profile) already did, it calls
	// exchange with the current refresh token and saves the new pair
	// durably before returning the new access token. Rotations are
	// serialized, so a refresh token is never presented twice (the server
	// would take that for theft and revoke the device's tokens).
	Rotate(stale string, exchange func(refresh string) (access string, expires time.Time, newRefresh string, err error)) (string, error)
}

// DeliveryHandler processes mailbox pushes in order.
type DeliveryHandler interface {
	// ProcessedSeq is the last mailbox sequence whose processing is durable.
	ProcessedSeq() (uint64, error)
	// HandleDelivery processes d. When it returns nil, the processing is
	// durable and the session acknowledges d.Seq. A delivery at or below
	// ProcessedSeq must be accepted as a no-op. An error ends the connection;
	// the session resyncs after reconnecting.
	HandleDelivery(ctx context.Context, d *wire.Delivery) error
}

// BatchHandler is a DeliveryHandler that can process several deliveries
// at once (one durable step for all). When it fails, the session falls back
// to HandleDelivery one at a time, so that the deliveries before a failing
// one are still kept.
type BatchHandler interface {
	DeliveryHandler
	HandleDeliveries(ctx context.Context, ds []*wire.Delivery) error
}

// Config configures a Session.
type Config struct {
	Dial       func(ctx context.Context) (io.ReadWriteCloser, error)
	Tokens     Tokens
	Handler    DeliveryHandler // nil: never Sync (requests only)
	Logger     *slog.Logger
	Now        func() time.Time
	Rand       *rand.Rand
	MinBackoff time.Duration // first reconnect delay (default 100ms)
	MaxBackoff time.Duration // largest reconnect delay (default 10s)
	MaxFrame   int           // default wire.DefaultMaxFrame
	// OnRevokedListed is told the user's devices that the server revoked
	// but that are still on the user's signed list (HelloOK.revoked_listed,
	// DevicesChanged pushes). It must not block.
	OnRevokedListed func(deviceIDs []string)
	// OnSignal receives typing and presence pushes. It must not block.
	OnSignal func(*wire.ServerFrame)
	// Passive sessions do not change the user's presence (Hello.passive):
	// one-shot commands. The server pushes them no presence.
	Passive bool
	// Meter counts round trips (meter.go); nil: DefaultMeter.
	Meter *Meter
	// AckDelay is how long an Ack may wait for a frame to ride with
	// (ack.go); 0: DefaultAckDelay, negative: every Ack at once.
	AckDelay time.Duration
}

// Session keeps one authenticated control stream to the homeserver up:
// it reconnects with exponential backoff and jitter, authenticates with the
// access token (refreshing it when it expired), resumes the mailbox after
// the last processed sequence and feeds deliveries to the handler in order.
type Session struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	cur       *Conn         // the live authenticated conn, nil while reconnecting
	ready     chan struct{} // closed while cur != nil; replaced when it goes away
	hello     *wire.HelloOK
	early     *earlyAuth // Hello written, not answered yet (early.go)
	head      uint64     // mailbox head announced by the last SyncOK
	processed uint64     // last mailbox seq handled
	progress  chan struct{}
	fatal     error

	cancel context.CancelFunc
	done   chan struct{}

	datagramSignals atomic.Uint64 // signals received as datagrams (datagram.go)

	acks acker // the owed Ack, across connections (ack.go)
}

// ErrEnded is wrapped by errors of a session that stopped for good.
var ErrEnded = errors.New("client: session ended")

// Start starts connecting in the background. Close stops it.
func Start(ctx context.Context, cfg Config) *Session {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.Meter == nil {
		cfg.Meter = DefaultMeter
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	if cfg.AckDelay == 0 {
		cfg.AckDelay = DefaultAckDelay
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Session{
		cfg: cfg, log: cfg.Logger, cancel: cancel, done: make(chan struct{}),
		ready: make(chan struct{}), progress: make(chan struct{}),
		acks: acker{delay: cfg.AckDelay},
	}
	go s.run(ctx)
	return s
}

// Close stops the session and waits for it to finish.
func (s *Session) Close() {
	s.cancel()
	<-s.done
}

// Done is closed when the session has stopped (Close, or a fatal error).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns the fatal error that stopped the session, if any.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

// Hello returns what the server said about this device on the last connect
// (nil before the first).
func (s *Session) Hello() *wire.HelloOK {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hello
}

func (s *Session) run(ctx context.Context) {
	defer close(s.done)
	attempt := 0
	for {
		s.mu.Lock()
		before := s.processed
		s.mu.Unlock()
		var up time.Time
		err := s.connectOnce(ctx, func() { up = s.cfg.Now() })
		// A connection that was up a while, or that processed deliveries,
		// starts the delays again from the shortest. One lost at once
		// without progress (a delivery whose processing keeps failing,
		// say, while another server is unreachable) keeps growing them:
		// reconnecting every MinBackoff would go on for as long.
		s.mu.Lock()
		progressed := s.processed > before
		s.mu.Unlock()
		if progressed || (!up.IsZero() && s.cfg.Now().Sub(up) >= stableConnection) {
			attempt = 0
		}
		if ctx.Err() != nil {
			s.stop(fmt.Errorf("%w: closed", ErrEnded))
			return
		}
		if isFatal(err) {
			s.log.Warn("session ended", "err", err)
			s.stop(fmt.Errorf("%w: %w", ErrEnded, err))
			return
		}
		if errors.Is(err, wire.ErrMalformedFrame) || errors.Is(err, wire.ErrFrameTooLarge) {
			// Nothing of that frame or after it was processed, and the
			// next connection starts from what was: nothing is lost, but a
			// stream out of step is a server or transport fault to report.
			s.log.Error("a frame from the server did not decode; reconnecting", "err", err)
		}
		s.log.Debug("connection lost", "err", err, "attempt", attempt)
		t := time.NewTimer(s.Backoff(attempt))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			s.stop(fmt.Errorf("%w: closed", ErrEnded))
			return
		case <-t.C:
		}
	}
}

func (s *Session) stop(err error) {
	s.mu.Lock()
	s.fatal = err
	s.mu.Unlock()
	s.bump()
}

// stableConnection is how long a connection must have lasted for the
// next reconnect to start from the shortest delay again.
const stableConnection = 2 * time.Second

// Backoff is an exponential delay with equal jitter: half fixed, half random.
func (s *Session) Backoff(attempt int) time.Duration {
	d := s.cfg.MinBackoff << min(attempt, 20)
	if d > s.cfg.MaxBackoff || d <= 0 {
		d = s.cfg.MaxBackoff
	}
	return d/2 + time.Duration(s.cfg.Rand.Int64N(int64(d/2)+1))
}

// isFatal reports whether reconnecting cannot help.
func isFatal(err error) bool {
	switch wire.KindOf(err) {
	case wire.Code_CODE_DEVICE_REVOKED, wire.Code_CODE_USER_DISABLED, wire.Code_CODE_UNAUTHENTICATED,
		wire.Code_CODE_BAD_CREDENTIALS:
		return true
	}
	return false
}

// connectOnce dials, authenticates, resyncs and serves pushes until the
// connection ends. connected is called once the session is usable.
func (s *Session) connectOnce(ctx context.Context, connected func()) error {
	rw, err := s.cfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c := NewConnMeter(rw, s.cfg.MaxFrame, s.cfg.Meter)
	c.acks = &s.acks
	defer c.Close()
	go func() { // a write blocked on a stalled stream must not outlive Close
		select {
		case <-ctx.Done():
			s.acks.flush(c) // what was processed is acknowledged before the stream ends
			c.Close()
		case <-c.done:
		}
	}()
	dr := datagramsOf(rw)
	hello, after, head, err := s.authenticate(ctx, c, dr != nil)
	if err != nil {
		return err
	}
	if dr != nil {
		dctx, dcancel := context.WithCancel(ctx)
		defer dcancel()
		go s.readDatagrams(dctx, dr)
	}
	s.mu.Lock()
	s.cur, s.hello = c, hello
	s.head, s.processed = head, after
	close(s.ready)
	s.mu.Unlock()
	s.bump()
	connected()
	s.log.Debug("connected", "device", hello.GetDeviceId(), "after", after, "head", s.head)
	if r, ok := rw.(quicRetrier); ok && r.RetryQUICAfter() > 0 {
		go s.backToQUIC(ctx, c, r.RetryQUICAfter()) // backtoquic.go
	}
	s.revokedListed(hello.GetRevokedListed())
	if s.cfg.Handler != nil {
		if err := s.acks.attach(ctx, c); err != nil { // owed from a connection that broke
			return err
		}
		defer func() {
			if ctx.Err() != nil { // closing: the watcher above may not have seen it owed yet
				s.acks.flush(c)
			}
			s.acks.detach(c)
		}()
	}

	err = s.servePushes(ctx, c)

	s.mu.Lock()
	s.cur = nil
	s.ready = make(chan struct{})
	s.mu.Unlock()
	s.bump()
	return err
}

// startSync writes a Sync asking for pushes after the last processed
// mailbox sequence, without waiting for its answer. Without a handler the
// session makes requests only and leaves the mailbox alone (wait is nil).
func (s *Session) startSync(ctx context.Context, c *Conn) (after uint64, wait func(context.Context) (*wire.ServerFrame, error), err error) {
	if s.cfg.Handler == nil {
		return 0, nil, nil
	}
	if after, err = s.cfg.Handler.ProcessedSeq(); err != nil {
		return 0, nil, fmt.Errorf("client: read mailbox position: %w", err)
	}
	wait, err = c.Start(ctx, "client.Sync", &wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{AfterSeq: after}}})
	return after, wait, err
}

// authenticate sends Hello (after a Refresh when the access token is known
// to have expired) and, pipelined behind it without waiting for its answer,
// the Sync: the server handles a stream's requests in order, so the Sync
// runs authenticated, and connecting costs one round trip, not two. When
// the Hello is refused as unauthenticated (the token expired early), the
// Sync is refused too; both are sent again after a Refresh.
func (s *Session) authenticate(ctx context.Context, c *Conn, datagrams bool) (hello *wire.HelloOK, after, head uint64, err error) {
	access, exp, _, err := s.cfg.Tokens.Tokens()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("client: read tokens: %w", err)
	}
	refreshed := false
	if !exp.IsZero() && !s.cfg.Now().Add(30*time.Second).Before(exp) {
		if access, err = s.refresh(ctx, c, access); err != nil {
			return nil, 0, 0, err
		}
		refreshed = true
	}
	var ea *earlyAuth
	defer func() { s.settleEarly(ea, err) }()
	for {
		waitHello, err := c.Start(ctx, "client.Hello", &wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: access, DatagramSignals: datagrams, Passive: s.cfg.Passive}}})
		if err != nil {
			return nil, 0, 0, err
		}
		after, waitSync, err := s.startSync(ctx, c)
		if err != nil {
			return nil, 0, 0, err
		}
		if ea == nil && !refreshed {
			ea = s.publishEarly(c) // requests go out behind Hello and Sync
		}
		r, err := waitHello(ctx)
		if err == nil {
			hello = r.GetHelloOk()
			if waitSync == nil {
				return hello, 0, 0, nil
			}
			r, err := waitSync(ctx)
			if err != nil {
				return nil, 0, 0, err
			}
			return hello, after, r.GetSyncOk().GetHead(), nil
		}
		// Requests pipelined behind a refused Hello were refused too.
		s.settleEarly(ea, err)
		ea = nil
		if refreshed || !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
			return nil, 0, 0, err
		}
		if waitSync != nil { // refused behind the Hello; answered before the Refresh
			if _, serr := waitSync(ctx); serr == nil {
				return nil, 0, 0, fmt.Errorf("client: Sync accepted after a refused Hello")
			}
		}
		if access, err = s.refresh(ctx, c, access); err != nil {
			return nil, 0, 0, err
		}
		refreshed = true
	}
}

// refresh trades the refresh token for a new pair (see Tokens.Rotate).
func (s *Session) refresh(ctx context.Context, c *Conn, stale string) (string, error) {
	return s.cfg.Tokens.Rotate(stale, func(refresh string) (string, time.Time, string, error) {
		r, err := c.Call(ctx, "client.Refresh", &wire.ClientFrame{Body: &wire.ClientFrame_Refresh{Refresh: &wire.Refresh{RefreshToken: refresh}}})
		if err != nil {
			return "", time.Time{}, "", err
		}
		ok := r.GetRefreshOk()
		return ok.GetAccessToken(), time.UnixMilli(ok.GetAccessExpiresMs()), ok.GetRefreshToken(), nil
	})
}

func (s *Session) revokedListed(ids []string) {
	if len(ids) > 0 && s.cfg.OnRevokedListed != nil {
		s.cfg.OnRevokedListed(ids)
	}
}
