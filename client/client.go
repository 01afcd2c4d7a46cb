package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"hearth/client/account"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/outbox"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/client/transfer"
	"hearth/homeserver/wire"
)

// DialFunc opens a control stream to addr (HOST:PORT) trusting the CA in
// the PEM file caPath. cmd/hearth wires client/transport.Dial.
type DialFunc func(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error)

// Config configures a Client.
type Config struct {
	Profile string       // profile folder holding the store
	Dial    DialFunc     // required
	Groups  e2ee.Engine  // the MLS engine; nil: messaging fails with ErrNoE2EE
	Logger  *slog.Logger // default: discard
	Now     func() time.Time
	Rand    io.Reader   // randomness for ids and keys; default crypto/rand
	Jitter  *mrand.Rand // reconnect jitter; default seeded randomly
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms, 10s).
	MinBackoff, MaxBackoff time.Duration
}

// Client is one device's view of Hearth: its profile store and, once
// logged in, its session with the homeserver.
type Client struct {
	cfg  Config
	st   *store.Store
	log  *slog.Logger
	dir  *directory.Directory // pinned identity keys and verified device lists
	acct *account.Manager     // login, approval, the user's devices
	// mls is cfg.Groups with parsed groups kept between messages in
	// gcache (client/e2ee).
	mls    e2ee.Engine
	gcache *e2ee.Cache
	media  *transfer.Transfer // file uploads and downloads
	out    *outbox.Sender     // sends the outbox

	mu   sync.Mutex
	sess *session.Session
	// synced: when each group's roster was last compared with its users'
	// signed device lists (one list fetch per member user), so that a
	// send to a big group does not refetch them all every time.
	synced map[string]time.Time
	// Background work Close waits for (revoked.go).
	bg       sync.WaitGroup
	dropping bool
	closing  bool
	onSignal func(Signal) // typing and presence pushes (signals.go)
}

// ErrNotLoggedIn is returned when the profile has no account yet.
var ErrNotLoggedIn = account.ErrNotLoggedIn

// Open opens the profile store. Several runs (processes) may use one
// profile at once; the store serializes their transactions.
func Open(cfg Config) (*Client, error) {
	if cfg.Profile == "" || cfg.Dial == nil {
		return nil, fmt.Errorf("client: a profile folder and a dialer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	st, err := store.Open(cfg.Profile, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{cfg: cfg, st: st, log: cfg.Logger, gcache: e2ee.NewCache()}
	if cfg.Groups != nil {
		c.mls = c.gcache.Wrap(cfg.Groups)
	}
	c.dir = directory.New(directory.Config{Store: st, Call: c.callIdempotent, CallNow: c.callNow, Changed: c.unsyncAll})
	c.acct = account.New(account.Config{Store: st, Dial: cfg.Dial, Call: c.call, CallIdempotent: c.callIdempotent,
		Dir: c.dir, ResetSession: c.resetSession, Activated: c.afterActivation, Approved: c.afterApproval, Revoked: c.afterRevoke,
		Rand: cfg.Rand, Now: cfg.Now, Log: cfg.Logger})
	c.media = transfer.New(transfer.Config{Dir: cfg.Profile, Store: st, Call: c.call, CallIdempotent: c.callIdempotent,
		Rand: cfg.Rand, Now: cfg.Now, Log: cfg.Logger})
	c.out = outbox.New(outbox.Config{Store: st, Log: cfg.Logger, Seal: c.seal, Resolve: conversationFor,
		ControlSent: c.controlSent, StaleEpoch: c.unsync, User: c.user})
	return c, nil
}

// Close ends the session and closes the store.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.bg.Wait() // background work still uses the session
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
	return c.st.Close()
}

// Store gives read access to the profile store (history, outbox).
func (c *Client) Store() *store.Store { return c.st }

// user returns the profile's user address.
func (c *Client) user() (string, error) {
	a, err := c.acct.Account()
	return a.User, err
}

// session returns the running session, starting it on first use.
func (c *Client) session(ctx context.Context) (*session.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		if err := c.sess.Err(); err != nil {
			return nil, err
		}
		return c.sess, nil
	}
	acct, err := c.acct.Account()
	if err != nil {
		return nil, err
	}
	var h session.DeliveryHandler
	if c.cfg.Groups != nil && acct.Active {
		h = &deliveries{c: c}
	}
	c.sess = session.Start(context.WithoutCancel(ctx), session.Config{
		Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			return c.cfg.Dial(ctx, acct.Server, acct.CAPath)
		},
		Tokens:          storeTokens{c.st, c.cfg.Now},
		Handler:         h,
		Logger:          c.log,
		Now:             c.cfg.Now,
		Rand:            c.cfg.Jitter,
		MinBackoff:      c.cfg.MinBackoff,
		MaxBackoff:      c.cfg.MaxBackoff,
		OnRevokedListed: c.onRevokedListed,
		OnSignal:        c.signal,
	})
	return c.sess, nil
}

// call sends one request over the session.
func (c *Client) call(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.Call(ctx, op, f)
}

// callNow is call without waiting for a connection (see Session.CallNow).
func (c *Client) callNow(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.CallNow(ctx, op, f)
}

// callIdempotent is call for requests that may safely run twice (reads,
// and Send with its message id): a request cut off by a lost connection is
// sent again once the session is back, until ctx ends.
func (c *Client) callIdempotent(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	for {
		r, err := c.call(ctx, op, f)
		if err == nil || !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
			return r, err
		}
		c.log.Debug("request cut off, resending", "op", op)
	}
}

// resetSession ends the current session; the next request starts a new one
// (which authenticates afresh, e.g. after the device was approved).
func (c *Client) resetSession() {
	c.mu.Lock()
	old := c.sess
	c.sess = nil
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// newID returns a fresh random identifier (32 hex digits).
func (c *Client) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(c.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("client: randomness: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// storeTokens keeps the session's tokens in the account record.
type storeTokens struct {
	st  *store.Store
	now func() time.Time
}

var _ session.Tokens = storeTokens{}

func (t storeTokens) Tokens() (string, time.Time, string, error) {
	var a store.Account
	err := t.st.View(func(tx *store.Tx) (err error) { a, err = tx.Account(); return })
	return a.AccessToken, a.AccessExpires, a.RefreshToken, err
}

func (t storeTokens) Rotate(stale string, exchange func(string) (string, time.Time, string, error)) (string, error) {
	var access string
	err := t.st.Update(func(tx *store.Tx) error {
		a, err := tx.Account()
		if err != nil {
			return err
		}
		if a.AccessToken != stale && t.now().Add(30*time.Second).Before(a.AccessExpires) {
			access = a.AccessToken // another run rotated meanwhile
			return nil
		}
		acc, exp, refresh, err := exchange(a.RefreshToken)
		if err != nil {
			return err
		}
		a.AccessToken, a.AccessExpires, a.RefreshToken = acc, exp, refresh
		access = acc
		return tx.PutAccount(a)
	})
	return access, err
}

// userOf returns the user part of a device address user@domain/DEVICE.
func userOf(device string) string {
	if i := strings.LastIndexByte(device, '/'); i >= 0 {
		return device[:i]
	}
	return device
}
