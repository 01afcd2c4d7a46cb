package homeserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"hearth/homeserver/admin"
	"hearth/homeserver/fedlink"
	"hearth/homeserver/keydir"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Admin is the server's admin operations (admin.Ops with invites and
// federation), served by the admin socket and the admin CLI.
type Admin struct {
	cfg     Config
	db      *storage.DB
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	started time.Time
	auth    *authority
	reg     *registry
	dir     *keydir.Directory
	fed     *fedlink.Link // nil: federation off
	ctr     *counters     // the session layer's totals (stats.go)
	refused *limiters     // remote admin requests refused per device (admin_remote.go)
}

var (
	_ admin.Ops              = (*Admin)(nil)
	_ admin.InviteOps        = (*Admin)(nil)
	_ admin.FederationKeyOps = (*Admin)(nil)
	_ admin.TokenKeyOps      = (*Admin)(nil)
)

func (s *Admin) nowMs() int64                   { return s.now().UnixMilli() }
func (s *Admin) userAddress(name string) string { return name + "@" + s.cfg.Domain }

// checkName validates a new account's local name (keys/identity rules:
// 1-64 of a-z 0-9 . _ -, starting and ending with a letter or digit).
func checkName(op, domain, name string) error {
	if _, err := identity.ParseUser(name + "@" + domain); err != nil {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid user name %q: lowercase a-z 0-9 . _ -, 1-64 characters", name)
	}
	return nil
}

func (s *Admin) userInfo(u *storage.User) admin.UserInfo {
	return admin.UserInfo{Name: u.Name, Address: s.userAddress(u.Name), Admin: u.Admin, Disabled: u.Disabled,
		Devices: u.Devices, CreatedMs: u.CreatedMs}
}

// UserAdd creates an account; CODE_CONFLICT if the name is taken.
func (s *Admin) UserAdd(ctx context.Context, name string, password []byte, isAdmin bool) (admin.UserInfo, error) {
	const op = "homeserver.UserAdd"
	if err := checkName(op, s.cfg.Domain, name); err != nil {
		return admin.UserInfo{}, err
	}
	if err := checkPassword(password); err != nil {
		return admin.UserInfo{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%v", err)
	}
	hash, err := s.auth.hashPassword(password)
	if err != nil {
		return admin.UserInfo{}, internal(op, err)
	}
	u := &storage.User{Name: name, PassHash: hash, Admin: isAdmin, CreatedMs: s.nowMs()}
	err = s.db.Write(ctx, func(tx *storage.Tx) error { return tx.InsertUser(u) })
	if errors.Is(err, storage.ErrConflict) {
		return admin.UserInfo{}, wire.Errorf(op, wire.Code_CODE_CONFLICT, "user %s exists", name)
	} else if err != nil {
		return admin.UserInfo{}, internal(op, err)
	}
	s.log.Info("user added", "user", name, "admin", isAdmin)
	return s.userInfo(u), nil
}

// UserList lists every account.
func (s *Admin) UserList(ctx context.Context) ([]admin.UserInfo, error) {
	const op = "homeserver.UserList"
	var us []*storage.User
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { us, err = tx.Users(); return err }); err != nil {
		return nil, internal(op, err)
	}
	out := make([]admin.UserInfo, 0, len(us))
	for _, u := range us {
		out = append(out, s.userInfo(u))
	}
	return out, nil
}

// userByName maps an admin-given name to the account.
func (s *Admin) userByName(ctx context.Context, op, name string) (*storage.User, error) {
	local, ok := s.auth.localName(name)
	if !ok {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %q", name)
	}
	var u *storage.User
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { u, err = tx.UserByName(local); return err })
	if errors.Is(err, storage.ErrNotFound) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %q", name)
	} else if err != nil {
		return nil, internal(op, err)
	}
	return u, nil
}

// UserSetDisabled disables or enables an account. Disabling closes its
// live sessions at once; its tokens stop working (every use checks).
func (s *Admin) UserSetDisabled(ctx context.Context, name string, disabled bool) error {
	const op = "homeserver.UserSetDisabled"
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return err
	}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetUserDisabled(u.ID, disabled) }); err != nil {
		return internal(op, err)
	}
	s.log.Info("user disabled flag set", "user", u.Name, "disabled", disabled)
	if disabled {
		s.reg.closeUser(u.ID, wire.Code_CODE_USER_DISABLED, "account disabled")
	}
	return nil
}

// UserDelete deletes an account with its devices, keys and mailboxes, and
// closes its sessions.
func (s *Admin) UserDelete(ctx context.Context, name string) error {
	const op = "homeserver.UserDelete"
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return err
	}
	if err := s.dir.WriteUser(ctx, u.Name, func(tx *storage.Tx) error { return tx.DeleteUser(u.ID) }); err != nil {
		return internal(op, err)
	}
	s.log.Info("user deleted", "user", u.Name)
	s.reg.closeUser(u.ID, wire.Code_CODE_USER_DISABLED, "account deleted")
	return nil
}

// UserPasswd sets a new password. Existing devices stay logged in.
func (s *Admin) UserPasswd(ctx context.Context, name string, password []byte) error {
	const op = "homeserver.UserPasswd"
	if err := checkPassword(password); err != nil {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%v", err)
	}
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return err
	}
	hash, err := s.auth.hashPassword(password)
	if err != nil {
		return internal(op, err)
	}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetPassHash(u.ID, hash) }); err != nil {
		return internal(op, err)
	}
	return nil
}

func statusText(st int) string {
	switch st {
	case storage.DevicePending:
		return "pending"
	case storage.DeviceActive:
		return "active"
	case storage.DeviceRevoked:
		return "revoked"
	}
	return "unknown"
}

// DeviceList lists an account's devices.
func (s *Admin) DeviceList(ctx context.Context, name string) ([]admin.DeviceInfo, error) {
	const op = "homeserver.DeviceList"
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return nil, err
	}
	var ds []*storage.Device
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { ds, err = tx.Devices(u.ID); return err }); err != nil {
		return nil, internal(op, err)
	}
	out := make([]admin.DeviceInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, admin.DeviceInfo{ID: d.ID, Name: d.Name, Status: statusText(d.Status), CreatedMs: d.CreatedMs,
			LastSeenMs: d.LastSeenMs, Online: len(s.reg.sessionsOfDevices([]string{d.ID})) > 0})
	}
	return out, nil
}

// DeviceRevoke revokes a device as an administrator: sessions closed,
// tokens and mailbox deleted. The server cannot sign the user's device
// list, so the device stays on it until one of the user's devices
// publishes a successor; other servers' clients still see it revoked here
// (it can no longer authenticate or receive).
func (s *Admin) DeviceRevoke(ctx context.Context, name, deviceID string) error {
	const op = "homeserver.DeviceRevoke"
	u, err := s.userByName(ctx, op, name)
	if err != nil {
		return err
	}
	var revoked []string
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		d, err := tx.Device(deviceID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != u.ID) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device %s of %s", deviceID, u.Name)
		} else if err != nil {
			return err
		}
		if d.Status == storage.DeviceRevoked {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device already revoked")
		}
		if err := tx.RevokeDevice(deviceID, s.nowMs()+1); err != nil {
			return err
		}
		revoked, err = revokedListed(tx, u.ID)
		return err
	})
	if err != nil {
		return internal(op, err)
	}
	s.log.Info("device revoked by admin", "user", u.Name, "device", deviceID)
	s.reg.closeDevice(deviceID, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
	s.reg.tellRevokedListed(u.ID, revoked)
	return nil
}

// Status summarizes the running server.
func (s *Admin) Status(ctx context.Context) (admin.Status, error) {
	const op = "homeserver.Status"
	var n int
	var fig storage.Figures
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) {
		if n, err = tx.CountUsers(); err != nil {
			return err
		}
		fig, err = tx.Figures()
		return err
	}); err != nil {
		return admin.Status{}, internal(op, err)
	}
	online := s.reg.online() // authenticated streams
	st := s.ctr.stats()
	batches, requests := s.db.WriteStats()
	return admin.Status{Domain: s.cfg.Domain, Version: s.cfg.Version, StartedMs: s.started.UnixMilli(), Users: n, OnlineSessions: online,
		MessagesAccepted: st.Accepted, MessagesDelivered: st.Delivered, AcksReceived: st.Acks, MailboxBacklog: fig.MailboxBacklog,
		FederationQueue: fig.FederationQueue, MediaBytes: fig.MediaBytes, MediaFiles: fig.MediaFiles,
		WriterBatches: batches, WriterRequests: requests, Refused: st.Refused, SendStages: st.Stages}, nil
}

// InviteCreate issues a random invite code good for uses accounts until
// now+ttl. Only its hash is stored: the code is returned this once.
func (s *Admin) InviteCreate(ctx context.Context, uses int, ttl time.Duration) (admin.InviteCreated, error) {
	const op = "homeserver.InviteCreate"
	if uses < 1 || uses > maxInviteUses {
		return admin.InviteCreated{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "uses must be 1..%d", maxInviteUses)
	}
	if ttl <= 0 || ttl > maxInviteTTL {
		return admin.InviteCreated{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "expiry must be more than 0 and at most %v", maxInviteTTL)
	}
	raw, err := randomCode(s.rand, inviteCodeLen)
	if err != nil {
		return admin.InviteCreated{}, internal(op, err)
	}
	now := s.now()
	inv := &storage.Invite{CodeHash: inviteHash(raw), Prefix: raw[:inviteGroup], Uses: uses,
		ExpiresMs: now.Add(ttl).UnixMilli(), CreatedMs: now.UnixMilli()}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.InsertInvite(inv) }); err != nil {
		return admin.InviteCreated{}, internal(op, err)
	}
	s.log.Info("invite created", "invite", inv.ID, "prefix", inv.Prefix, "uses", uses, "expires_ms", inv.ExpiresMs)
	return admin.InviteCreated{Code: formatInvite(raw), InviteInfo: inviteInfo(inv, now.UnixMilli())}, nil
}

// InviteList lists every invite, newest first, without codes.
func (s *Admin) InviteList(ctx context.Context) ([]admin.InviteInfo, error) {
	const op = "homeserver.InviteList"
	var is []*storage.Invite
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { is, err = tx.Invites(); return err }); err != nil {
		return nil, internal(op, err)
	}
	now := s.nowMs()
	out := make([]admin.InviteInfo, 0, len(is))
	for _, i := range is {
		out = append(out, inviteInfo(i, now))
	}
	return out, nil
}

// InviteRevoke revokes the invite with this code, or with this id when
// code is empty. CODE_NOT_FOUND if there is none or it is already revoked.
func (s *Admin) InviteRevoke(ctx context.Context, code string, id int64) error {
	const op = "homeserver.InviteRevoke"
	if (code == "") == (id == 0) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "give an invite code or an invite id")
	}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		if code != "" {
			raw, ok := normalizeInvite(code)
			if !ok {
				return storage.ErrNotFound
			}
			i, err := tx.InviteByHash(inviteHash(raw))
			if err != nil {
				return err
			}
			id = i.ID
		}
		return tx.RevokeInvite(id, s.nowMs())
	})
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such unrevoked invite")
	} else if err != nil {
		return internal(op, err)
	}
	s.log.Info("invite revoked", "invite", id)
	return nil
}

// FederationPeerAdd pins a peer: its address, the CA to trust, and the key
// document fetched from that address now.
func (s *Admin) FederationPeerAdd(ctx context.Context, domain, address string, caPEM []byte) (admin.PeerInfo, error) {
	if s.fed == nil {
		return admin.PeerInfo{}, errFedOff
	}
	return s.fed.Peers.PeerAdd(ctx, domain, address, caPEM)
}

// FederationList reports peers, queue depths, last contact and backoff.
func (s *Admin) FederationList(ctx context.Context) (admin.FederationInfo, error) {
	if s.fed == nil {
		return admin.FederationInfo{}, errFedOff
	}
	return s.fed.Peers.List(ctx)
}

// FederationPolicy changes the policy: op is "allow", "deny" or "mode".
func (s *Admin) FederationPolicy(ctx context.Context, op, value string) error {
	if s.fed == nil {
		return errFedOff
	}
	return s.fed.Peers.SetPolicy(ctx, op, value)
}

// FederationKeyRotate makes a new federation signing key current; the old
// one stays published until now+grace.
func (s *Admin) FederationKeyRotate(ctx context.Context, grace time.Duration) (admin.KeyRotation, error) {
	if s.fed == nil {
		return admin.KeyRotation{}, errFedOff
	}
	return s.fed.Peers.RotateKey(ctx, grace)
}

// TokenKeyRotate makes a new access-token signing key current; tokens the
// old one signed are accepted until now+grace.
func (s *Admin) TokenKeyRotate(ctx context.Context, grace time.Duration) (admin.KeyRotation, error) {
	return s.auth.rotateTokenKey(ctx, grace)
}
