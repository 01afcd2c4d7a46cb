package account

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// ErrNotLoggedIn is returned when the profile has no account yet.
var ErrNotLoggedIn = errors.New("client: profile is not logged in (run `hearth chat login` first)")

// CallFunc sends one request over the device's session.
type CallFunc func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)

// Config is what a Manager needs.
type Config struct {
	Store *store.Store // the account, the device's keys, the recovery key
	// Dial opens a connection of its own for Login and Register, which
	// come before there is a session.
	Dial func(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error)
	// Call sends a request over the session; CallIdempotent sends it again
	// once the session is back when a lost connection cut it off.
	Call, CallIdempotent CallFunc
	Dir                  *directory.Directory
	// ResetSession ends the session: the next request authenticates
	// afresh (the server treats a stream as pending until then).
	ResetSession func()
	// Pending, when set, runs while this device waits for approval by
	// another device, before Login shows its link code (and again when a
	// resumed Login shows it again): the device publishes its KeyPackages
	// then, so that the approving device can add it to its conversations
	// as soon as it approved it. Activated runs once this device is active
	// (first device, approved, or self-approved), after the account says so.
	Pending   func(ctx context.Context) error
	Activated func(ctx context.Context) error
	// Approved is told a device this device just approved (Approve);
	// Revoked runs after this device revoked one (Revoke), active saying
	// whether this device is active.
	Approved func(ctx context.Context, device string)
	Revoked  func(ctx context.Context, active bool)
	Rand     io.Reader
	Now      func() time.Time
	Log      *slog.Logger

	// History, when set, takes the archive an approving device referred
	// to in the approval (identity.Bundle.History).
	History HistoryImporter
}

// HistoryImporter imports the history archive an approval refers to.
type HistoryImporter interface {
	// Keep records the reference in the transaction that activates this
	// device, so that an import that fails or is cut off can be retried.
	Keep(tx *store.Tx, ref []byte) error
	// Import tries the kept import once, before WaitApproval returns.
	Import(ctx context.Context) error
}

// Manager logs this profile's device in and manages the user's devices.
type Manager struct {
	cfg Config

	mu   sync.Mutex
	self e2ee.Self // the last Self, for its stored seed (selfSeed)
	seed []byte
}

// New returns a Manager.
func New(cfg Config) *Manager { return &Manager{cfg: cfg} }

// Account returns the profile's account.
func (m *Manager) Account() (store.Account, error) {
	if a, ok := m.cfg.Store.CachedAccount(); ok {
		return a, nil // what the Peek below would read
	}
	var a store.Account
	// A Peek: nothing put off by Store.Later changes the account.
	err := m.cfg.Store.Peek(func(tx *store.Tx) (err error) { a, err = tx.Account(); return })
	if errors.Is(err, store.ErrNotFound) {
		return a, ErrNotLoggedIn
	}
	return a, err
}

// selfFor returns the member address with the signature key of seed,
// deriving the key (a scalar multiplication) only when the seed changed.
func (m *Manager) selfFor(addr string, seed []byte) e2ee.Self {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.self.Address != addr || !bytes.Equal(m.seed, seed) {
		m.self = e2ee.Self{Address: addr, SignatureKey: ed25519.NewKeyFromSeed(seed)}
		m.seed = bytes.Clone(seed)
	}
	return m.self
}

// Self returns this device as an MLS member.
func (m *Manager) Self() (e2ee.Self, error) {
	if a, seed, ok := m.cfg.Store.CachedAccountKey(); ok && len(seed) == ed25519.SeedSize {
		return m.selfFor(a.User+"/"+a.DeviceID, seed), nil // what the Peek below would read
	}
	var s e2ee.Self
	err := m.cfg.Store.Peek(func(tx *store.Tx) error {
		a, err := tx.Account()
		if err != nil {
			return err
		}
		seed, err := tx.Key(store.KeySignature)
		if err != nil {
			return fmt.Errorf("signature key: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return errors.New("stored signature key has the wrong size")
		}
		s = m.selfFor(a.User+"/"+a.DeviceID, seed)
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("client: this device: %w", err)
	}
	return s, nil
}

// LoginParams are what `hearth chat login` collects.
type LoginParams struct {
	User       string // user@domain
	Password   string
	Server     string // HOST:PORT
	CAPath     string // PEM file of the server's CA
	DeviceName string
	// RecoveryKey, when set, is the user's recovery key text: the device
	// derives the identity key and approves itself instead of waiting.
	RecoveryKey string
	// InviteCode, when set, creates the account with an invite code
	// (Register) instead of logging in to an existing one.
	InviteCode string
}

// LoginResult says what happened. RecoveryKey is set only for the user's
// first device and must be shown to the user once; LinkCode is set for a
// device that waits for approval (see WaitApproval).
type LoginResult struct {
	User, DeviceID string
	Active         bool
	RecoveryKey    string
	LinkCode       string
}

// Login creates this profile's device on the server. The first device of a
// user creates the identity key and publishes it with the first signed
// device list; any later device is pending until approved by another
// device (WaitApproval) or by the recovery key.
func (m *Manager) Login(ctx context.Context, p LoginParams) (LoginResult, error) {
	const op = "client.Login"
	user, err := identity.ParseUser(p.User)
	if err != nil {
		return LoginResult{}, wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	var rk *identity.RecoveryKey
	if p.RecoveryKey != "" {
		k, err := identity.ParseRecoveryKey(p.RecoveryKey)
		if err != nil {
			return LoginResult{}, wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
		}
		rk = &k
	}
	if a, err := m.Account(); err == nil {
		if a.Active || a.User != user.String() {
			return LoginResult{}, fmt.Errorf("%s: profile already logged in as %s/%s", op, a.User, a.DeviceID)
		}
		return m.resumePending(ctx, a, rk)
	} else if !errors.Is(err, ErrNotLoggedIn) {
		return LoginResult{}, err
	}
	link, sig, err := m.deviceKeys()
	if err != nil {
		return LoginResult{}, fmt.Errorf("%s: %w", op, err)
	}
	ok, err := m.loginRequest(ctx, p, link, sig)
	if err != nil {
		return LoginResult{}, err
	}
	acct := store.Account{
		User: user.String(), DeviceID: ok.GetDeviceId(), Server: p.Server, CAPath: p.CAPath, DeviceName: p.DeviceName,
		AccessToken: ok.GetAccessToken(), AccessExpires: time.UnixMilli(ok.GetAccessExpiresMs()), RefreshToken: ok.GetRefreshToken(),
	}
	if ok.GetUser() != "" && ok.GetUser() != acct.User {
		return LoginResult{}, fmt.Errorf("%s: server logged in %q, not %q", op, ok.GetUser(), acct.User)
	}
	res := LoginResult{User: acct.User, DeviceID: acct.DeviceID}
	switch {
	case ok.GetFirstDevice():
		key, err := identity.NewRecoveryKey(m.cfg.Rand)
		if err != nil {
			return res, fmt.Errorf("%s: %w", op, err)
		}
		if err := m.saveLogin(acct, link, sig, &key); err != nil {
			return res, err
		}
		if err := m.publishFirst(ctx, user, key, sig); err != nil {
			return res, err
		}
		res.RecoveryKey, res.Active = key.Text(), true
	default:
		// A pending device keeps its link code, so that approval by
		// another device remains possible if self-approval fails.
		code, err := identity.FormatLinkCode(ok.GetLinkCode(), link.Public())
		if err != nil {
			return res, fmt.Errorf("%s: server link token: %w", op, err)
		}
		acct.LinkCode = code
		if err := m.saveLogin(acct, link, sig, nil); err != nil {
			return res, err
		}
		if rk == nil {
			res.LinkCode = code
			return res, m.pending(ctx)
		}
		if err := m.selfApprove(ctx, *rk, sig); err != nil {
			return res, err
		}
		res.Active = true
	}
	return res, m.activate(ctx)
}

// pending runs Config.Pending for a device about to show its link code.
// A failure leaves the device pending: Login run again resumes it.
func (m *Manager) pending(ctx context.Context) error {
	if m.cfg.Pending == nil {
		return nil
	}
	if err := m.cfg.Pending(ctx); err != nil {
		return fmt.Errorf("client.Login: device pending, link code not shown: %w", err)
	}
	return nil
}

// deviceKeys makes this device's link key and MLS signature key. They are
// stored with the account once the server accepted the login.
func (m *Manager) deviceKeys() (*identity.LinkPrivateKey, ed25519.PrivateKey, error) {
	link, err := identity.GenerateLinkKey(m.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	_, sig, err := ed25519.GenerateKey(m.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	return link, sig, nil
}

// loginRequest sends Login on a connection of its own.
func (m *Manager) loginRequest(ctx context.Context, p LoginParams, link *identity.LinkPrivateKey, sig ed25519.PrivateKey) (*wire.LoginOK, error) {
	const op = "client.Login"
	if p.InviteCode != "" {
		return m.registerRequest(ctx, p, link, sig)
	}
	rw, err := m.cfg.Dial(ctx, p.Server, p.CAPath)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", op, p.Server, err)
	}
	cn := session.NewConn(rw, 0)
	defer cn.Close()
	r, err := cn.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{
		User: p.User, Password: p.Password, DeviceName: p.DeviceName,
		LinkPublicKey: link.Public().Bytes(), SignatureKey: sig.Public().(ed25519.PublicKey),
		Passive: true, // logging in does not change the user's presence
	}}})
	if err != nil {
		return nil, err
	}
	return r.GetLoginOk(), nil
}

// saveLogin stores the account with the device's keys (and, for a first
// device, the identity key and, until activation, the recovery key) in one
// transaction.
func (m *Manager) saveLogin(acct store.Account, link *identity.LinkPrivateKey, sig ed25519.PrivateKey, rk *identity.RecoveryKey) error {
	return m.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.PutKey(store.KeyLink, link.Bytes()); err != nil {
			return err
		}
		if err := tx.PutKey(store.KeySignature, sig.Seed()); err != nil {
			return err
		}
		if rk != nil {
			// A first device: the identity key, and the recovery key only
			// until the login finished and showed it (activate deletes it).
			// bbolt keeps the value until the commit: not cleared here.
			if err := tx.PutKey(store.KeyIdentity, rk.Signer().Seed()); err != nil {
				return err
			}
			if err := tx.PutKey(store.KeyRecoveryPending, []byte(rk.Text())); err != nil {
				return err
			}
		}
		return tx.PutAccount(acct)
	})
}

// publishFirst publishes the identity key with the first signed list.
func (m *Manager) publishFirst(ctx context.Context, user identity.UserAddress, rk identity.RecoveryKey, sig ed25519.PrivateKey) error {
	const op = "client.PublishIdentity"
	a, err := m.Account()
	if err != nil {
		return err
	}
	now := m.cfg.Now().UnixMilli()
	l := &identity.DeviceList{User: user, Version: 1, IssuedMs: now, Devices: []identity.Device{{
		DeviceID: a.DeviceID, SignatureKey: sig.Public().(ed25519.PublicKey), Name: a.DeviceName, AddedMs: now,
	}}}
	signer := rk.Signer()
	list, s, err := l.Sign(signer)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = m.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PublishIdentity{PublishIdentity: &wire.PublishIdentity{
		IdentityKey: signer.Public().Bytes(), DeviceList: &wire.SignedDeviceList{List: list, Signature: s},
	}}})
	return err
}

// selfApprove puts this pending device on the list with the identity key
// derived from the recovery key.
func (m *Manager) selfApprove(ctx context.Context, rk identity.RecoveryKey, sig ed25519.PrivateKey) error {
	const op = "client.SelfApprove"
	a, err := m.Account()
	if err != nil {
		return err
	}
	user, _ := identity.ParseUser(a.User)
	signer := rk.Signer()
	cur, err := m.cfg.Dir.Fetch(ctx, nil, user)
	if err != nil {
		return err
	}
	if key, _ := m.cfg.Dir.IdentityKey(user); !key.Equal(signer.Public()) {
		return wire.Errorf(op, wire.Code_CODE_BAD_CREDENTIALS, "the recovery key does not belong to %s", a.User)
	}
	now := m.cfg.Now().UnixMilli()
	next, err := cur.WithDevice(identity.Device{DeviceID: a.DeviceID, SignatureKey: sig.Public().(ed25519.PublicKey), Name: a.DeviceName, AddedMs: now}, now)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	list, s, err := next.Sign(signer)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := m.putIdentity(signer); err != nil {
		return err
	}
	_, err = m.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: a.DeviceID, DeviceList: &wire.SignedDeviceList{List: list, Signature: s},
	}}})
	return err
}

// resumePending continues the login of a device that is still pending (an
// earlier run was interrupted, or its approval failed): with the recovery
// key it approves itself, otherwise it shows the same link code again.
func (m *Manager) resumePending(ctx context.Context, a store.Account, rk *identity.RecoveryKey) (LoginResult, error) {
	res := LoginResult{User: a.User, DeviceID: a.DeviceID}
	self, err := m.Self()
	if err != nil {
		return res, err
	}
	if a.LinkCode == "" {
		return m.resumeFirst(ctx, a, self)
	}
	if rk == nil {
		res.LinkCode = a.LinkCode
		return res, m.pending(ctx)
	}
	if err := m.selfApprove(ctx, *rk, self.SignatureKey); err != nil {
		return res, err
	}
	res.Active = true
	return res, m.activate(ctx)
}

// resumeFirst finishes a first device whose identity was created but
// perhaps not published (the earlier run failed or lost the answer).
func (m *Manager) resumeFirst(ctx context.Context, a store.Account, self e2ee.Self) (LoginResult, error) {
	const op = "client.Login"
	res := LoginResult{User: a.User, DeviceID: a.DeviceID}
	var text []byte
	err := m.cfg.Store.View(func(tx *store.Tx) (err error) { text, err = tx.Key(store.KeyRecoveryPending); return err })
	if errors.Is(err, store.ErrNotFound) {
		// Set up by an older version, which kept the recovery key under KeyIdentity.
		err = m.cfg.Store.View(func(tx *store.Tx) (err error) { text, err = tx.Key(store.KeyIdentity); return err })
	}
	if err != nil {
		return res, fmt.Errorf("%s: resuming the first device: %w", op, err)
	}
	rk, err := identity.ParseRecoveryKey(string(text))
	if err != nil {
		return res, fmt.Errorf("%s: resuming the first device: %w", op, err)
	}
	if err := m.putIdentity(rk.Signer()); err != nil {
		return res, err
	}
	user, err := identity.ParseUser(a.User)
	if err != nil {
		return res, err
	}
	err = m.publishFirst(ctx, user, rk, self.SignatureKey)
	if wire.Is(err, wire.Code_CODE_CONFLICT) {
		// Published by the earlier run: make sure it is this identity.
		if _, err = m.cfg.Dir.Fetch(ctx, nil, user); err == nil {
			if key, _ := m.cfg.Dir.IdentityKey(user); !key.Equal(rk.Signer().Public()) {
				err = wire.Errorf(op, wire.Code_CODE_CONFLICT, "%s already has another identity key", a.User)
			}
		}
	}
	if err != nil {
		return res, err
	}
	res.RecoveryKey, res.Active = rk.Text(), true
	return res, m.activate(ctx)
}

// registerRequest sends Register (LoginParams.InviteCode set) on a
// connection of its own: the server creates the account with the invite
// and answers like a first Login, so Login goes on exactly as for a first
// device.
func (m *Manager) registerRequest(ctx context.Context, p LoginParams, link *identity.LinkPrivateKey, sig ed25519.PrivateKey) (*wire.LoginOK, error) {
	const op = "client.Register"
	rw, err := m.cfg.Dial(ctx, p.Server, p.CAPath)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", op, p.Server, err)
	}
	cn := session.NewConn(rw, 0)
	defer cn.Close()
	r, err := cn.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_Register{Register: &wire.Register{
		InviteCode: p.InviteCode, User: p.User, Password: p.Password, DeviceName: p.DeviceName,
		LinkPublicKey: link.Public().Bytes(), SignatureKey: sig.Public().(ed25519.PublicKey),
		Passive: true,
	}}})
	if err != nil {
		return nil, err
	}
	return r.GetLoginOk(), nil
}
