package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/outbox"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/client/transfer"
	"hearth/keys/identity"
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
	// ConnectWait bounds how long Receive waits to reach the server and
	// how long it waits for progress while catching up (default 20s).
	ConnectWait time.Duration
	// NoDeliveryReceipts stops this device from sending delivery receipts
	// (for benchmarks that measure what receipts cost).
	NoDeliveryReceipts bool
	// ReceiptWindow is how long a receipt queued while Receive runs waits
	// for more of its kind and conversation to fold into it before it is
	// sent (docs/receipts.md): default 1s; negative: no wait.
	ReceiptWindow time.Duration
	// Passive sessions do not change the user's presence: connecting does
	// not mark the user online nor ending offline, and the server pushes
	// them no presence (one-shot commands; `recv --follow` is not one).
	Passive bool
	// Meter counts the session's round trips; nil: session.DefaultMeter.
	Meter *session.Meter
	// AckDelay is session.Config.AckDelay: how long an Ack may wait for
	// a frame to ride with (0: session.DefaultAckDelay; negative: none).
	AckDelay time.Duration
	// Passphrase unlocks an encrypted profile, or encrypts a new one
	// (client/store, docs/security.md). Empty: the profile must not be
	// encrypted.
	Passphrase []byte
	// HistoryStall ends an attempt to import a history archive that made
	// no progress this long (default 30s: one 256 KiB range of a download
	// on an 8.5 KB/s link); it is tried again later.
	HistoryStall time.Duration
	// Keyring, when set and no Passphrase is given, opens a profile whose
	// key is kept in the OS keyring and encrypts a new profile with a
	// random key kept there (client/oskeyring).
	Keyring store.Keyring
	// MediaConnections is the most connections to the homeserver one file
	// transfer of 1 MiB or more uses at once, this device's session
	// included (client/transfer, parallel.go): each has its own congestion
	// window, which on a lossy link multiplies the throughput. 0: 4; 1:
	// the session's only.
	MediaConnections int
}

// Client is one device's view of Hearth: its profile store and, once
// logged in, its session with the homeserver. Open wires its parts.
type Client struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
	// historyProgress is told how importing a history archive goes
	// (OnHistoryProgress).
	historyProgress func(string)

	link *link // the session with the homeserver
	// mls is cfg.Groups with parsed groups kept between messages in
	// gcache; states loads and saves them in the store.
	mls    e2ee.Engine
	gcache *e2ee.Cache
	states convstate.States

	dir     *directory.Directory // pinned identity keys and verified device lists
	acct    *account.Manager     // login, approval, the user's devices
	kp      *keyPackages         // this device's published KeyPackages
	rosters *roster.Roster       // rosters in line with the device lists
	devs    *deviceSync          // conversations in step with the user's devices
	recv    *receiver            // the mailbox deliveries
	groups  *Groups              // group operations
	sealer  *sealer              // outbox items' conversations and encryption
	heal    *healer              // conversations out of step rejoined
	out     *outbox.Sender       // sends the outbox
	media   *transfer.Transfer   // file uploads and downloads

	ticketsOnce sync.Once
	tickets     *ticketCache // TLS session tickets in the profile (tickets.go)

	mu       sync.Mutex
	onSignal func(Signal)            // typing and presence pushes (signals.go)
	seen     map[string]presenceSeen // the last presence passed on per user (signals.go)

	rcptKick    chan struct{} // a receipt was queued (receipts_flush.go)
	rcptHolding atomic.Int32  // running Receives, which send held receipts
	rcptNew     atomic.Bool   // this process queued a receipt (sent on Close)
	rcptUnread  atomic.Bool   // a receipt was queued since the receipt flusher last read the outbox

	inboxMu sync.Mutex // one drainInbox at a time
	// printed is the inbox position up to which this process printed;
	// removing those entries is put off to the next store write (recv.go).
	printed uint64
}

// ErrNotLoggedIn is returned when the profile has no account yet.
var ErrNotLoggedIn = account.ErrNotLoggedIn

// ErrSessionEnded is wrapped when the server refused this device for good
// (revoked, account disabled or deleted, login no longer valid).
var ErrSessionEnded = session.ErrEnded

// ErrIdentityChanged is wrapped when a user's device list is signed by
// another identity key than the one this device pinned (Trust accepts it).
var ErrIdentityChanged = identity.ErrIdentityChanged

// Open opens the profile store. Several runs (processes) may use one
// profile at once; the store serializes their transactions.
func Open(cfg Config) (*Client, error) {
	if cfg.Profile == "" || cfg.Dial == nil {
		return nil, fmt.Errorf("client: a profile folder and a dialer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = connectWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReceiptWindow == 0 {
		cfg.ReceiptWindow = defaultReceiptWindow
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	st, err := store.OpenWith(cfg.Profile, 10*time.Second, store.Options{Passphrase: cfg.Passphrase, Keyring: cfg.Keyring})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{cfg: cfg, st: st, log: cfg.Logger, gcache: e2ee.NewCache(), rcptKick: make(chan struct{}, 1)}
	if cfg.Groups != nil {
		c.mls = c.gcache.Wrap(cfg.Groups)
	}
	c.states = convstate.States{Engine: c.mls, Cache: c.gcache}
	c.link = &link{start: c.sessionConfig, log: cfg.Logger}
	c.dir = directory.New(directory.Config{Store: st, Call: c.link.callIdempotent, CallNow: c.link.callNow, Changed: func() { c.rosters.UnsyncAll() },
		Home: c.homeDomain, Now: cfg.Now})
	c.acct = account.New(account.Config{Store: st, Dial: cfg.Dial, Call: c.link.call, CallIdempotent: c.link.callIdempotent,
		Dir: c.dir, ResetSession: c.link.reset, Pending: func(ctx context.Context) error { return c.devs.whilePending(ctx) },
		Activated: func(ctx context.Context) error { return c.devs.afterActivation(ctx) },
		Approved:  func(ctx context.Context, d string) { c.devs.afterApproval(ctx, d); c.settingsAfterApproval(ctx) }, Revoked: func(ctx context.Context, active bool) { c.devs.afterRevoke(ctx, active) },
		Rand: cfg.Rand, Now: cfg.Now, Log: cfg.Logger, History: historyImporter{c}})
	c.kp = &keyPackages{e2ee: cfg.Groups != nil, st: st, mls: c.mls, self: c.acct.Self, call: c.link.call}
	c.rosters = roster.New(roster.Config{Store: st, States: c.states, Dir: c.dir, Self: c.acct.Self, Call: c.link.call, NewID: c.newID,
		Added: func(tx *store.Tx, conv string) error { return c.groups.forwardMeta(tx, conv) }, Held: held, Log: cfg.Logger, Now: cfg.Now})
	c.devs = &deviceSync{e2ee: cfg.Groups != nil, st: st, link: c.link, acct: c.acct, rosters: c.rosters, kp: c.kp, log: cfg.Logger,
		added: func(ctx context.Context, conv, device string) error { return c.groups.shareAdminKey(ctx, conv, device) }}
	c.recv = &receiver{st: st, states: c.states, mls: c.mls, dir: c.dir, rosters: c.rosters, self: c.acct.Self,
		newID: c.newID, now: cfg.Now, log: cfg.Logger,
		rcpt: &receipts{newID: c.newID, now: cfg.Now}, queued: c.receiptQueued, noDelivered: cfg.NoDeliveryReceipts}
	if cfg.MediaConnections == 0 {
		cfg.MediaConnections = DefaultMediaConnections
	}
	c.media = transfer.New(transfer.Config{Dir: cfg.Profile, Store: st, Call: c.link.call, CallIdempotent: c.link.callIdempotent,
		Rand: cfg.Rand, Now: cfg.Now, Log: cfg.Logger, OpenLane: c.openMediaLane, Connections: cfg.MediaConnections})
	c.heal = &healer{st: st, states: c.states, mls: c.mls, dir: c.dir, rosters: c.rosters, acct: c.acct,
		callIdempotent: c.link.callIdempotent, newID: c.newID, now: cfg.Now, log: cfg.Logger}
	c.groups = &Groups{e2ee: cfg.Groups != nil, st: st, states: c.states, mls: c.mls, dir: c.dir, rosters: c.rosters, acct: c.acct,
		session: c.link.session, ensureKeyPackages: c.kp.ensure, inStep: c.inStep, enqueue: c.enqueue, flush: c.Flush,
		call: c.link.call, callIdempotent: c.link.callIdempotent, newID: c.newID, rand: cfg.Rand, now: cfg.Now, log: cfg.Logger}
	c.sealer = &sealer{st: st, states: c.states, mls: c.mls, dir: c.dir, rosters: c.rosters, acct: c.acct, groups: c.groups,
		heal: c.heal, parked: c.recv.waitParked, live: c.link.caughtUp, call: c.link.call, callIdempotent: c.link.callIdempotent, newID: c.newID, log: cfg.Logger}
	c.out = c.newSender(c.sealer.seal)
	return c, nil
}

// newSender returns the outbox Sender, encrypting with seal.
func (c *Client) newSender(seal func(context.Context, store.OutboxItem) (store.OutboxItem, error)) *outbox.Sender {
	return outbox.New(outbox.Config{Store: c.st, Log: c.log, Seal: seal, Resolve: convstate.For,
		ControlSent: c.groups.controlSent, StaleEpoch: c.rosters.Unsync, User: c.user, Refused: refusal, Gone: c.bodyGone,
		Hold: c.receiptHold, Now: c.cfg.Now})
}

// Close sends the receipts this process queued that still wait (within
// 2 s, only while connected; receipts_flush.go), ends the session and
// closes the store.
func (c *Client) Close() error {
	c.sendReceiptsOnClose()
	c.devs.close() // background work still uses the session
	c.link.reset()
	if c.tickets != nil {
		c.tickets.flush(2 * time.Second) // the next command's 0-RTT
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

// sessionConfig configures the session of the account as it is now: a
// device that is not active yet (or a Client without an MLS engine) takes
// no mailbox deliveries.
func (c *Client) sessionConfig() (session.Config, error) {
	acct, err := c.acct.Account()
	if err != nil {
		return session.Config{}, err
	}
	var h session.DeliveryHandler
	if c.cfg.Groups != nil && acct.Active {
		h = c.recv
	}
	return session.Config{
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
		OnRevokedListed: c.devs.onRevokedListed,
		OnSignal:        c.signal,
		Passive:         c.cfg.Passive,
		Meter:           c.cfg.Meter,
		AckDelay:        c.cfg.AckDelay,
	}, nil
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

// homeDomain is the domain of this device's user ("" before login).
func (c *Client) homeDomain() string {
	u, err := c.user()
	if err != nil {
		return ""
	}
	_, domain, _ := strings.Cut(u, "@")
	return domain
}
