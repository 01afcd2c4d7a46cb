package homeserver

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const (
	inviteCodeLen         = 16 // b32chars: 80 bits
	inviteGroup           = 4  // shown as XXXX-XXXX-XXXX-XXXX
	maxInviteUses         = 10000
	maxInviteTTL          = 365 * 24 * time.Hour
	registerPerAddrPerSec = 1.0 / 60 // Register attempts per client address
	registerPerAddrBurst  = 10
	registerPerCodePerSec = 0.1 // Register attempts per invite code, from all addresses
	registerPerCodeBurst  = 20
)

// formatInvite groups a raw code for humans: ABCD-EFGH-IJKL-MNOP.
func formatInvite(raw string) string {
	var parts []string
	for len(raw) > inviteGroup {
		parts, raw = append(parts, raw[:inviteGroup]), raw[inviteGroup:]
	}
	return strings.Join(append(parts, raw), "-")
}

// normalizeInvite accepts a code as typed (any case, with or without
// dashes and spaces) and returns its raw form; ok is false if it cannot be
// a code.
func normalizeInvite(code string) (string, bool) {
	if len(code) > 64 {
		return "", false
	}
	raw := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
	if len(raw) != inviteCodeLen || strings.Trim(raw, b32chars) != "" {
		return "", false
	}
	return raw, true
}

func inviteHash(raw string) []byte { return tokenHash("invite:" + raw) }

func inviteInfo(i *storage.Invite, nowMs int64) admin.InviteInfo {
	st := "active"
	switch {
	case i.RevokedMs != 0:
		st = "revoked"
	case i.UsesLeft == 0:
		st = "used"
	case nowMs >= i.ExpiresMs:
		st = "expired"
	}
	return admin.InviteInfo{ID: i.ID, Prefix: i.Prefix, Uses: i.Uses, UsesLeft: i.UsesLeft, ExpiresMs: i.ExpiresMs,
		CreatedMs: i.CreatedMs, RevokedMs: i.RevokedMs, State: st}
}

// inviteRefusal explains why an invite cannot be used (nil if it can).
func inviteRefusal(op string, i *storage.Invite, nowMs int64) error {
	why := "unknown invite code"
	switch {
	case i == nil:
	case i.RevokedMs != 0:
		why = "invite code revoked"
	case i.UsesLeft <= 0:
		why = "invite code already used up"
	case nowMs >= i.ExpiresMs:
		why = "invite code expired"
	default:
		return nil
	}
	return wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "%s; ask the server administrator for a new one", why)
}

// checkDeviceFields validates what Login and Register say about the new
// device; it returns the device name to use.
func checkDeviceFields(op, name string, linkKey, sigKey []byte) (string, error) {
	if name == "" {
		name = "device"
	}
	if len(name) > maxDeviceName || !utf8.ValidString(name) {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device name must be UTF-8 of at most %d bytes", maxDeviceName)
	}
	if len(linkKey) > 0 {
		if _, err := identity.ParseLinkPublicKey(linkKey); err != nil {
			return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid link public key")
		}
	}
	if len(sigKey) > identity.MaxSignatureKeyLen {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "signature key over %d bytes", identity.MaxSignatureKeyLen)
	}
	return name, nil
}

// register creates an account with an invite code and logs in its first
// device. The code is checked before the (costly) password hash, and
// consumed in the same transaction that creates the account, so a refused
// registration consumes nothing and creates nothing. Guessing is limited
// per stream, per client address and per code (so that one address's bad
// codes never block another's valid one); with 80-bit codes it is hopeless.
func (ss *session) register(m *wire.Register) (*wire.ServerFrame, error) {
	const op = "homeserver.Register"
	s := ss.s
	if err := ss.throttleAuth(op); err != nil {
		return nil, err
	}
	if perAddrLimited(ss.addr) {
		if err := s.limits.check(op, "register-addr:"+ss.addr, s.now(), registerPerAddrPerSec, registerPerAddrBurst); err != nil {
			return nil, err
		}
	}
	name, err := checkDeviceFields(op, m.GetDeviceName(), m.GetLinkPublicKey(), m.GetSignatureKey())
	if err != nil {
		return nil, err
	}
	u, err := s.registerUser(ss.ctx, op, m)
	if err != nil {
		return nil, err
	}
	res, err := s.auth.createDevice(ss.ctx, u, name, m.GetLinkPublicKey(), m.GetSignatureKey())
	if err != nil {
		return nil, wire.E(op, err)
	}
	ss.passive = m.GetPassive()
	if err := ss.authenticate(res.device); err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_LoginOk{LoginOk: res.ok}}, nil
}

// registerUser checks the request and the invite, then consumes one use
// and creates the account (role user) in one transaction.
func (s *Server) registerUser(ctx context.Context, op string, m *wire.Register) (*storage.User, error) {
	local, ok := s.auth.localName(m.GetUser())
	if !ok {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid user name %q: a name on %s of lowercase a-z 0-9 . _ -, 1-64 characters", m.GetUser(), s.cfg.Domain)
	}
	if err := checkName(op, s.cfg.Domain, local); err != nil {
		return nil, err
	}
	pw := []byte(m.GetPassword())
	if err := checkPassword(pw); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%v", err)
	}
	raw, ok := normalizeInvite(m.GetInviteCode())
	if !ok {
		return nil, inviteRefusal(op, nil, 0)
	}
	if err := s.limits.check(op, "register-code:"+string(inviteHash(raw)), s.now(), registerPerCodePerSec, registerPerCodeBurst); err != nil {
		return nil, err
	}
	var inv *storage.Invite
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { inv, err = tx.InviteByHash(inviteHash(raw)); return err })
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, internal(op, err)
	}
	if err := inviteRefusal(op, inv, s.nowMs()); err != nil {
		return nil, err
	}
	hash, err := s.auth.hashPassword(pw)
	if err != nil {
		return nil, internal(op, err)
	}
	u := &storage.User{Name: local, PassHash: hash, CreatedMs: s.nowMs()}
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		i, err := tx.ConsumeInvite(inviteHash(raw), u.CreatedMs)
		if errors.Is(err, storage.ErrInviteUnusable) || errors.Is(err, storage.ErrNotFound) {
			return inviteRefusal(op, i, u.CreatedMs)
		} else if err != nil {
			return err
		}
		inv = i
		return tx.InsertUser(u)
	})
	if errors.Is(err, storage.ErrConflict) {
		return nil, wire.Errorf(op, wire.Code_CODE_CONFLICT, "user %s exists", local)
	} else if err != nil {
		return nil, internal(op, err)
	}
	s.log.Info("user registered with invite", "user", local, "invite", inv.ID, "uses_left", inv.UsesLeft)
	return u, nil
}
