package homeserver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const (
	deviceIDLen     = 16 // base32 characters: 80 bits
	linkTokenLen    = 16
	maxDeviceName   = identity.MaxDeviceNameLen
	refreshTokenLen = 32 // random bytes
)

// throttleAuth limits credential attempts per stream.
func (ss *session) throttleAuth(op string) error {
	if ok, wait := ss.authTries.take(ss.s.now(), loginPerSec, loginBurst); !ok {
		return &wire.Error{Op: op, Kind: wire.Code_CODE_RATE_LIMITED, Msg: "too many attempts", RetryAfter: max(wait.Milliseconds(), 1)}
	}
	return nil
}

// authenticate binds the stream to a device and registers it; it
// re-checks the device afterwards so that a revocation committed while we
// registered cannot be missed (revocations commit, then close what is
// registered).
func (ss *session) authenticate(d *storage.Device) error {
	const op = "homeserver.authenticate"
	ss.status.Store(int32(d.Status))
	if err := ss.s.reg.register(ss, d); err != nil {
		ss.status.Store(0)
		return err
	}
	var cur *storage.Device
	var u *storage.User
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) {
		if cur, err = tx.Device(d.ID); err != nil {
			return err
		}
		u, err = tx.UserByID(d.UserID)
		return err
	})
	if err == nil && (cur.Status == storage.DeviceRevoked || u.Disabled || cur.TokensAfterMs > d.TokensAfterMs) {
		err = wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "session no longer valid")
	}
	if err != nil {
		ss.status.Store(0)
		ss.s.reg.unregister(ss)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "session no longer valid")
		}
		return internal(op, err)
	}
	if d.Status == storage.DeviceActive {
		ss.s.userOnline(ss)
	}
	return nil
}

// hello authenticates the stream with an access token.
func (ss *session) hello(m *wire.Hello) (*wire.ServerFrame, error) {
	const op = "homeserver.Hello"
	if err := ss.throttleAuth(op); err != nil {
		return nil, err
	}
	d, err := ss.s.auth.checkAccessToken(ss.ctx, m.GetAccessToken())
	if err != nil {
		return nil, wire.E(op, err)
	}
	var head uint64
	var revoked []string
	err = ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) {
		if head, _, err = tx.MailboxState(d.ID); err != nil || d.Status != storage.DeviceActive {
			return err
		}
		revoked, err = revokedListed(tx, d.UserID)
		return err
	})
	if err != nil {
		return nil, internal(op, err)
	}
	ss.passive = m.GetPassive()
	if err := ss.authenticate(d); err != nil {
		return nil, err
	}
	ss.useDatagrams(m.GetDatagramSignals())
	ss.s.auth.touch(d.ID)
	return &wire.ServerFrame{Body: &wire.ServerFrame_HelloOk{HelloOk: &wire.HelloOK{
		User: ss.s.userAddress(d.UserName), DeviceId: d.ID, Status: wire.DeviceStatus(d.Status),
		ServerTimeMs: ss.s.nowMs(), MailboxHead: head, RevokedListed: revoked,
	}}}, nil
}

// login checks the password, creates a device and authenticates the stream.
func (ss *session) login(m *wire.Login) (*wire.ServerFrame, error) {
	const op = "homeserver.Login"
	if err := ss.throttleAuth(op); err != nil {
		return nil, err
	}
	name := m.GetDeviceName()
	if name == "" {
		name = "device"
	}
	if len(name) > maxDeviceName || !utf8.ValidString(name) {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device name must be UTF-8 of at most %d bytes", maxDeviceName)
	}
	if lk := m.GetLinkPublicKey(); len(lk) > 0 {
		if _, err := identity.ParseLinkPublicKey(lk); err != nil {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid link public key")
		}
	}
	if len(m.GetSignatureKey()) > identity.MaxSignatureKeyLen {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "signature key over %d bytes", identity.MaxSignatureKeyLen)
	}
	u, err := ss.s.auth.checkCredentials(ss.ctx, ss.addr, m.GetUser(), []byte(m.GetPassword()))
	if err != nil {
		return nil, wire.E(op, err)
	}
	res, err := ss.s.auth.createDevice(ss.ctx, u, name, m.GetLinkPublicKey(), m.GetSignatureKey())
	if err != nil {
		return nil, wire.E(op, err)
	}
	ss.passive = m.GetPassive()
	if err := ss.authenticate(res.device); err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_LoginOk{LoginOk: res.ok}}, nil
}

type newDevice struct {
	device *storage.Device
	ok     *wire.LoginOK
}

// refresh rotates a refresh token. Presenting a token that was already
// rotated is treated as theft: the whole chain is revoked, the device's
// access tokens die and its live sessions are closed.
func (ss *session) refresh(m *wire.Refresh) (*wire.ServerFrame, error) {
	const op = "homeserver.Refresh"
	if err := ss.throttleAuth(op); err != nil {
		return nil, err
	}
	ok, err := ss.s.auth.rotateRefresh(ss.ctx, m.GetRefreshToken())
	if err != nil {
		return nil, wire.E(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_RefreshOk{RefreshOk: ok}}, nil
}

// localName turns "alice" or "alice@thisdomain" into "alice"; ok is false
// for another domain or an invalid name.
// authority checks credentials and issues them: passwords (argon2id),
// access tokens (EdDSA JWT), rotating refresh tokens, new devices.
type authority struct {
	cfg    Config
	db     *storage.DB
	keysMu sync.RWMutex
	keys   *tokenKeys // access-token signing keys (tokenkeys.go)
	rotMu  sync.Mutex // one token key rotation at a time
	log    *slog.Logger
	now    func() time.Time
	rand   io.Reader
	limits *limiters
	reg    *registry // sessions to end on refresh token reuse
	hashes *hashGate // bounds concurrent argon2id runs (memory; password.go)
	dummy  string    // hash verified for unknown users (timing)
}

func newAuthority(cfg Config, db *storage.DB, key ed25519.PrivateKey, log *slog.Logger, now func() time.Time, rand io.Reader,
	limits *limiters, reg *registry) (*authority, error) {
	keys, err := loadTokenKeys(context.Background(), db, cfg.KeyDir, key)
	if err != nil {
		return nil, err
	}
	a := &authority{cfg: cfg, db: db, keys: keys, log: log, now: now, rand: rand,
		limits: limits, reg: reg, hashes: newHashGate(cfg.Password.MaxConcurrent)}
	dummy, err := a.hashPassword([]byte("not a password of anybody"))
	if err != nil {
		return nil, err
	}
	a.dummy = dummy
	return a, nil
}

func (s *authority) nowMs() int64                   { return s.now().UnixMilli() }
func (s *authority) userAddress(name string) string { return name + "@" + s.cfg.Domain }

func (s *authority) localName(user string) (string, bool) {
	u, err := identity.NormalizeUserIn(user, s.cfg.Domain)
	if err != nil || u.Domain != s.cfg.Domain {
		return "", false
	}
	return u.Local, true
}

// userGone reports whether the local user sub (user@domain) does not exist.
func (s *authority) userGone(ctx context.Context, sub string) bool {
	name, ok := s.localName(sub)
	if !ok {
		return false
	}
	err := s.db.Read(ctx, func(tx *storage.Tx) error { _, err := tx.UserByName(name); return err })
	return errors.Is(err, storage.ErrNotFound)
}

// checkAccessToken verifies a token and returns its device, which must be
// live (not revoked, user not disabled, token not older than a chain
// revocation).
func (s *authority) checkAccessToken(ctx context.Context, tok string) (*storage.Device, error) {
	const op = "homeserver.checkAccessToken"
	now := s.now()
	var c *claims
	var err error
	for _, pub := range s.verifyKeys(now) {
		if c, err = parseAccessToken(pub, s.cfg.Domain, now, tok); !errors.Is(err, errBadToken) {
			break
		}
	}
	if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "%v", err)
	}
	var d *storage.Device
	var u *storage.User
	err = s.db.Read(ctx, func(tx *storage.Tx) (err error) {
		if d, err = tx.Device(c.Did); err != nil {
			return err
		}
		u, err = tx.UserByID(d.UserID)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		if s.userGone(ctx, c.Sub) {
			// The token is genuine (signed by this server), so its holder
			// may learn that its account no longer exists.
			return nil, wire.Errorf(op, wire.Code_CODE_USER_DISABLED, "account deleted")
		}
		return nil, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "unknown device")
	}
	if err != nil {
		return nil, internal(op, err)
	}
	switch {
	case s.userAddress(u.Name) != c.Sub:
		return nil, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "token does not match its device")
	case d.Status == storage.DeviceRevoked:
		return nil, wire.Errorf(op, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
	case u.Disabled:
		return nil, wire.Errorf(op, wire.Code_CODE_USER_DISABLED, "account disabled")
	case c.Ims < d.TokensAfterMs:
		return nil, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "token revoked")
	}
	return d, nil
}

// checkCredentials returns the user if the password matches. Unknown users
// and wrong passwords give the same error after the same work. Attempts
// from the client address addr are limited in total, which bounds the
// password hashing one address can cause, and per account name, for known
// and unknown names alike (no enumeration through the limiter). The
// account limit is per address so that a guesser elsewhere never locks
// the owner out.
func (s *authority) checkCredentials(ctx context.Context, addr, user string, pw []byte) (*storage.User, error) {
	const op = "homeserver.checkCredentials"
	badCreds := wire.Errorf(op, wire.Code_CODE_BAD_CREDENTIALS, "wrong user or password")
	local, ok := s.localName(user)
	account := local
	if !ok {
		account = "?" + strings.ToLower(user)
	}
	if perAddrLimited(addr) {
		if err := s.limits.check(op, "login-addr:"+addr, s.now(), loginPerAddrPerSec, loginPerAddrBurst); err != nil {
			return nil, err
		}
	}
	if err := s.limits.check(op, "login:"+addr+" "+account, s.now(), loginPerUserPerSec, loginPerUserBurst); err != nil {
		return nil, err
	}
	var u *storage.User
	var err error
	if ok {
		err = s.db.Read(ctx, func(tx *storage.Tx) (err error) { u, err = tx.UserByName(local); return err })
	}
	if !ok || errors.Is(err, storage.ErrNotFound) {
		s.verifyPassword(s.dummy, pw)
		return nil, badCreds
	}
	if err != nil {
		return nil, internal(op, err)
	}
	match, err := s.verifyPassword(u.PassHash, pw)
	if err != nil {
		return nil, internal(op, err)
	}
	if !match {
		return nil, badCreds
	}
	if u.Disabled {
		return nil, wire.Errorf(op, wire.Code_CODE_USER_DISABLED, "account disabled")
	}
	return u, nil
}

// createDevice makes a device for u: ACTIVE and first if the user has no
// identity key yet, PENDING with a link code otherwise.
func (s *authority) createDevice(ctx context.Context, u *storage.User, name string, linkKey, sigKey []byte) (*newDevice, error) {
	const op = "homeserver.createDevice"
	id, err := randomCode(s.rand, deviceIDLen)
	if err != nil {
		return nil, internal(op, err)
	}
	linkToken, err := randomCode(s.rand, linkTokenLen)
	if err != nil {
		return nil, internal(op, err)
	}
	refresh, err := randomText(s.rand, refreshTokenLen)
	if err != nil {
		return nil, internal(op, err)
	}
	family, err := randomText(s.rand, 16)
	if err != nil {
		return nil, internal(op, err)
	}
	now := s.now()
	d := &storage.Device{ID: id, UserID: u.ID, UserName: u.Name, Name: name, LinkPublicKey: linkKey, SignatureKey: sigKey, CreatedMs: now.UnixMilli()}
	first := false
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		_, err := tx.IdentityKey(u.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			first = true
		case err != nil:
			return err
		}
		if n, err := tx.CountLiveDevices(u.ID); err != nil {
			return err
		} else if n >= s.cfg.MaxDevices {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "the account has %d devices; revoke one first", n)
		}
		var lt []byte
		if first {
			d.Status = storage.DeviceActive
		} else {
			if len(linkKey) == 0 {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a device that needs approval must send its link public key")
			}
			d.Status = storage.DevicePending
			lt = tokenHash(linkToken)
		}
		if err := tx.InsertDevice(d, lt); err != nil {
			return err
		}
		return tx.InsertRefreshToken(&storage.RefreshToken{Hash: tokenHash(refresh), DeviceID: id, Family: []byte(family),
			ExpiresMs: now.Add(s.cfg.RefreshTokenTTL).UnixMilli(), CreatedMs: now.UnixMilli()})
	})
	if err != nil {
		return nil, internal(op, err)
	}
	access, exp, err := s.issueAccessToken(s.userAddress(u.Name), id)
	if err != nil {
		return nil, internal(op, err)
	}
	ok := &wire.LoginOK{User: s.userAddress(u.Name), DeviceId: id, AccessToken: access, AccessExpiresMs: exp.UnixMilli(),
		RefreshToken: refresh, Status: wire.DeviceStatus(d.Status), FirstDevice: first}
	if !first {
		ok.LinkCode = linkToken
	}
	s.log.Info("device created", "user", u.Name, "device", id, "first", first)
	return &newDevice{device: d, ok: ok}, nil
}

func (s *authority) rotateRefresh(ctx context.Context, tok string) (*wire.RefreshOK, error) {
	const op = "homeserver.rotateRefresh"
	unauth := wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "invalid refresh token")
	if tok == "" || len(tok) > 256 {
		return nil, unauth
	}
	next, err := randomText(s.rand, refreshTokenLen)
	if err != nil {
		return nil, internal(op, err)
	}
	now := s.now()
	var d *storage.Device
	var reuse bool
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		rt, err := tx.RefreshTokenByHash(tokenHash(tok))
		if errors.Is(err, storage.ErrNotFound) {
			return unauth
		} else if err != nil {
			return err
		}
		if rt.RotatedMs != 0 {
			// Reuse: revoke the chain and every access token issued so far.
			reuse, d = true, &storage.Device{ID: rt.DeviceID}
			if err := tx.DeleteRefreshFamily(rt.Family); err != nil {
				return err
			}
			return tx.SetTokensAfter(rt.DeviceID, now.UnixMilli()+1)
		}
		if rt.ExpiresMs <= now.UnixMilli() {
			return wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "refresh token expired")
		}
		if d, err = tx.Device(rt.DeviceID); err != nil {
			return err
		}
		u, err := tx.UserByID(d.UserID)
		if err != nil {
			return err
		}
		if d.Status == storage.DeviceRevoked {
			return wire.Errorf(op, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
		}
		if u.Disabled {
			return wire.Errorf(op, wire.Code_CODE_USER_DISABLED, "account disabled")
		}
		if err := tx.MarkRefreshRotated(rt.Hash, now.UnixMilli()); err != nil {
			return err
		}
		return tx.InsertRefreshToken(&storage.RefreshToken{Hash: tokenHash(next), DeviceID: rt.DeviceID, Family: rt.Family,
			ExpiresMs: now.Add(s.cfg.RefreshTokenTTL).UnixMilli(), CreatedMs: now.UnixMilli()})
	})
	if err != nil {
		return nil, internal(op, err)
	}
	if reuse {
		s.log.Warn("refresh token reuse: chain revoked", "device", d.ID)
		s.reg.closeDevice(d.ID, wire.Code_CODE_UNAUTHENTICATED, "refresh token reuse detected; log in again")
		return nil, wire.Errorf(op, wire.Code_CODE_UNAUTHENTICATED, "refresh token reuse detected; log in again")
	}
	access, exp, err := s.issueAccessToken(s.userAddress(d.UserName), d.ID)
	if err != nil {
		return nil, internal(op, err)
	}
	return &wire.RefreshOK{AccessToken: access, AccessExpiresMs: exp.UnixMilli(), RefreshToken: next}, nil
}

// touch records that a device was seen (best effort, off the request path).
func (s *authority) touch(deviceID string) {
	go s.db.Write(context.Background(), func(tx *storage.Tx) error { return tx.TouchDevice(deviceID, s.nowMs()) })
}
