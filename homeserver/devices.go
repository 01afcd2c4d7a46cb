package homeserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const (
	maxSealedBundle   = 64 << 10
	maxKeyPackage     = 64 << 10
	maxPackagesPerReq = 100
)

// verifyList checks a signed device list against the user's identity key
// and the rules every stored list obeys: it is this user's, it names the
// device that publishes it (mustList), and every listed device is one of
// the user's active devices, or allowPending (the device being approved).
// The server never edits a list: it stores only what the identity key signed.
func verifyList(op string, tx *storage.Tx, userAddr string, userID int64, idKey []byte, sl *wire.SignedDeviceList,
	mustList, allowPending string) (*identity.DeviceList, error) {
	if sl == nil || len(sl.List) == 0 || len(sl.Signature) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "signed device list required")
	}
	pub, err := identity.ParsePublicKey(idKey)
	if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid identity key")
	}
	l, err := identity.VerifyDeviceList(pub, sl.List, sl.Signature)
	if errors.Is(err, identity.ErrSignature) {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "device list signature does not verify")
	} else if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid device list: %v", err)
	}
	if l.User.String() != userAddr {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list is for %s, not %s", l.User, userAddr)
	}
	if mustList != "" {
		if _, ok := l.Lookup(mustList); !ok {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list does not include device %s", mustList)
		}
	}
	for _, ld := range l.Devices {
		d, err := tx.Device(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != userID) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list names unknown device %s", ld.DeviceID)
		} else if err != nil {
			return nil, err
		}
		if d.Status != storage.DeviceActive && !(d.Status == storage.DevicePending && ld.DeviceID == allowPending) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list names device %s that is not active", ld.DeviceID)
		}
	}
	return l, nil
}

// putList stores a verified list whose version must grow.
// putList stores a verified signed list and, with federation, queues it
// for every server sharing a conversation with the user (same transaction).
func (s *Server) putList(op string, tx *storage.Tx, userName string, userID int64, l *identity.DeviceList, sl *wire.SignedDeviceList, nowMs int64) error {
	if !s.lists.inWrite(userName) {
		return fmt.Errorf("%s: list of %s written outside listCache.write (the list cache would go stale)", op, userName)
	}
	err := tx.PutDeviceList(userID, &storage.SignedList{Version: l.Version, List: sl.List, Signature: sl.Signature, UpdatedMs: nowMs})
	if errors.Is(err, storage.ErrConflict) {
		return wire.Errorf(op, wire.Code_CODE_VERSION, "device list version %d does not grow", l.Version)
	}
	if err != nil || s.fed == nil {
		return err
	}
	return s.fed.PropagateList(tx, userName, userID, l.Version, sl)
}

func (ss *session) publishIdentity(m *wire.PublishIdentity) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishIdentity"
	if _, err := identity.ParsePublicKey(m.GetIdentityKey()); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "identity key must be 32 bytes of Ed25519")
	}
	addr := ss.s.userAddress(ss.userName)
	err := ss.s.lists.write(ss.ctx, ss.s.db, ss.userName, func(tx *storage.Tx) error {
		if _, err := tx.IdentityKey(ss.userID); err == nil {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "the identity key is already published")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		l, err := verifyList(op, tx, addr, ss.userID, m.IdentityKey, m.DeviceList, ss.deviceID, "")
		if err != nil {
			return err
		}
		if err := tx.InsertIdentityKey(ss.userID, m.IdentityKey, ss.s.nowMs()); errors.Is(err, storage.ErrConflict) {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "the identity key is already published")
		} else if err != nil {
			return err
		}
		return ss.s.putList(op, tx, ss.userName, ss.userID, l, m.DeviceList, ss.s.nowMs())
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return okFrame(), nil
}

func (ss *session) publishDeviceList(m *wire.PublishDeviceList) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishDeviceList"
	addr := ss.s.userAddress(ss.userName)
	err := ss.s.lists.write(ss.ctx, ss.s.db, ss.userName, func(tx *storage.Tx) error {
		idKey, err := tx.IdentityKey(ss.userID)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no identity key published")
		} else if err != nil {
			return err
		}
		l, err := verifyList(op, tx, addr, ss.userID, idKey, m.GetDeviceList(), ss.deviceID, "")
		if err != nil {
			return err
		}
		return ss.s.putList(op, tx, ss.userName, ss.userID, l, m.DeviceList, ss.s.nowMs())
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return okFrame(), nil
}

// approveDevice activates a pending device of the caller's user. From an
// active device it carries the sealed bundle for the new device. A pending
// device may approve itself (docs/decisions/0002: it holds the recovery
// key), with no bundle: the signed list is the proof either way.
func (ss *session) approveDevice(m *wire.ApproveDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.ApproveDevice"
	self := m.GetDeviceId() == ss.deviceID
	if ss.status.Load() != int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE) && !self {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "a pending device can only approve itself")
	}
	if n := len(m.GetSealedBundle()); (n == 0 && !self) || n > maxSealedBundle {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "sealed bundle must be 1..%d bytes", maxSealedBundle)
	}
	addr := ss.s.userAddress(ss.userName)
	err := ss.s.lists.write(ss.ctx, ss.s.db, ss.userName, func(tx *storage.Tx) error {
		target, err := tx.Device(m.GetDeviceId())
		if errors.Is(err, storage.ErrNotFound) || (err == nil && target.UserID != ss.userID) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such device")
		} else if err != nil {
			return err
		}
		if target.Status != storage.DevicePending {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device is not pending")
		}
		idKey, err := tx.IdentityKey(ss.userID)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no identity key published")
		} else if err != nil {
			return err
		}
		l, err := verifyList(op, tx, addr, ss.userID, idKey, m.GetDeviceList(), target.ID, target.ID)
		if err != nil {
			return err
		}
		if listedKey, _ := l.Lookup(target.ID); len(target.SignatureKey) > 0 && !bytes.Equal(listedKey.SignatureKey, target.SignatureKey) {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the list gives device %s another signature key than it registered", target.ID)
		}
		if err := ss.s.putList(op, tx, ss.userName, ss.userID, l, m.DeviceList, ss.s.nowMs()); err != nil {
			return err
		}
		return tx.ApproveDevice(target.ID, m.SealedBundle)
	})
	if err != nil {
		return nil, internal(op, err)
	}
	ss.s.setSessionStatus(m.DeviceId, wire.DeviceStatus_DEVICE_STATUS_ACTIVE)
	return okFrame(), nil
}

// setSessionStatus updates the live sessions of a device after approval.
func (s *Server) setSessionStatus(deviceID string, st wire.DeviceStatus) {
	for _, ss := range s.reg.sessionsOfDevices([]string{deviceID}) {
		if ss.status.Swap(int32(st)) != int32(st) && st == wire.DeviceStatus_DEVICE_STATUS_ACTIVE {
			s.userOnline(ss)
		}
	}
}

func (ss *session) fetchApproval() (*wire.ServerFrame, error) {
	const op = "homeserver.FetchApproval"
	var d *storage.Device
	if err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { d, err = tx.Device(ss.deviceID); return err }); err != nil {
		return nil, internal(op, err)
	}
	res := &wire.ApprovalResult{Status: wire.DeviceStatus(d.Status)}
	if d.Status == storage.DeviceActive {
		res.SealedBundle = d.SealedBundle
		ss.s.setSessionStatus(d.ID, wire.DeviceStatus_DEVICE_STATUS_ACTIVE)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Approval{Approval: res}}, nil
}

// linkToken extracts the server's lookup token from a link code: the part
// before "-" (the fingerprint that follows is for the approving person,
// never for the server), uppercased.
func linkToken(code string) string {
	tok, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(code)), "-")
	return tok
}

func (ss *session) pendingDevice(m *wire.PendingDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.PendingDevice"
	tok := linkToken(m.GetLinkCode())
	if len(tok) != linkTokenLen {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no pending device with that code")
	}
	var d *storage.Device
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { d, err = tx.DeviceByLinkToken(tokenHash(tok)); return err })
	if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != ss.userID) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no pending device with that code")
	} else if err != nil {
		return nil, internal(op, err)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_PendingDevice{PendingDevice: &wire.PendingDeviceInfo{
		DeviceId: d.ID, Name: d.Name, LinkPublicKey: d.LinkPublicKey, SignatureKey: d.SignatureKey, CreatedMs: d.CreatedMs,
	}}}, nil
}

func (ss *session) listDevices() (*wire.ServerFrame, error) {
	const op = "homeserver.ListDevices"
	var ds []*storage.Device
	if err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { ds, err = tx.Devices(ss.userID); return err }); err != nil {
		return nil, internal(op, err)
	}
	res := &wire.DevicesResult{}
	for _, d := range ds {
		res.Devices = append(res.Devices, &wire.DeviceInfo{DeviceId: d.ID, Name: d.Name, Status: wire.DeviceStatus(d.Status),
			CreatedMs: d.CreatedMs, LastSeenMs: d.LastSeenMs})
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Devices{Devices: res}}, nil
}

// revokeDevice revokes one of the caller's user's devices. When the device
// is on the current signed list, the request must carry the successor
// list without it (signed by the identity key, version grown).
func (ss *session) revokeDevice(m *wire.RevokeDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.RevokeDevice"
	addr := ss.s.userAddress(ss.userName)
	target := m.GetDeviceId()
	err := ss.s.lists.write(ss.ctx, ss.s.db, ss.userName, func(tx *storage.Tx) error {
		d, err := tx.Device(target)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != ss.userID) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such device")
		} else if err != nil {
			return err
		}
		if d.Status == storage.DeviceRevoked {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device already revoked")
		}
		onList, err := listed(tx, ss.userID, target)
		if err != nil {
			return err
		}
		if onList || m.GetDeviceList() != nil {
			idKey, err := tx.IdentityKey(ss.userID)
			if err != nil {
				return err
			}
			mustList := ss.deviceID
			if target == ss.deviceID {
				mustList = ""
			}
			l, err := verifyList(op, tx, addr, ss.userID, idKey, m.GetDeviceList(), mustList, "")
			if err != nil {
				return err
			}
			if _, still := l.Lookup(target); still {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the new device list still includes the revoked device")
			}
			if err := ss.s.putList(op, tx, ss.userName, ss.userID, l, m.DeviceList, ss.s.nowMs()); err != nil {
				return err
			}
		}
		return tx.RevokeDevice(target, ss.s.nowMs()+1)
	})
	if err != nil {
		return nil, internal(op, err)
	}
	ss.s.log.Info("device revoked", "user", ss.userName, "device", target, "by", ss.deviceID)
	if target == ss.deviceID {
		// Answer first, then end this very session.
		ss.afterReply = func() { ss.s.reg.closeDevice(target, wire.Code_CODE_DEVICE_REVOKED, "device revoked") }
		return okFrame(), nil
	}
	ss.s.reg.closeDevice(target, wire.Code_CODE_DEVICE_REVOKED, "device revoked")
	return okFrame(), nil
}

// listed reports whether a device is on the user's current signed list.
func listed(tx *storage.Tx, userID int64, deviceID string) (bool, error) {
	sl, err := tx.DeviceList(userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	l, err := identity.UnmarshalDeviceList(sl.List)
	if err != nil {
		return false, err
	}
	_, ok := l.Lookup(deviceID)
	return ok, nil
}

func (ss *session) publishKeyPackages(m *wire.PublishKeyPackages) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishKeyPackages"
	pkgs := m.GetKeyPackages()
	if len(pkgs) == 0 && len(m.GetLastResort()) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "no key packages")
	}
	if len(pkgs) > maxPackagesPerReq {
		return nil, wire.Errorf(op, wire.Code_CODE_LIMIT, "at most %d key packages per request", maxPackagesPerReq)
	}
	for _, p := range append(pkgs, m.GetLastResort()) {
		if len(p) > maxKeyPackage {
			return nil, wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "key package over %d bytes", maxKeyPackage)
		}
	}
	for _, p := range pkgs {
		if len(p) == 0 {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "empty key package")
		}
	}
	err := ss.s.db.Write(ss.ctx, func(tx *storage.Tx) error {
		n, err := tx.CountKeyPackages(ss.deviceID)
		if err != nil {
			return err
		}
		if n+len(pkgs) > ss.s.cfg.MaxKeyPackages {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "a device may store at most %d key packages (has %d)", ss.s.cfg.MaxKeyPackages, n)
		}
		return tx.AddKeyPackages(ss.deviceID, pkgs, m.GetLastResort(), ss.s.nowMs())
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return okFrame(), nil
}

func (ss *session) fetchDeviceList(m *wire.FetchDeviceList) (*wire.ServerFrame, error) {
	const op = "homeserver.FetchDeviceList"
	if ss.s.fed != nil {
		if d, ok := ss.s.fed.Queries.RemoteDomain(m.GetUser()); ok {
			r, err := ss.s.fed.Queries.FetchRemoteList(ss.ctx, d, m.GetUser())
			if err != nil {
				return nil, err
			}
			return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceList{DeviceList: r}}, nil
		}
	}
	r, err := ss.s.localDeviceList(ss.ctx, op, m.GetUser())
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_DeviceList{DeviceList: r}}, nil
}

// localDeviceList returns the identity key and signed list of a local user.
func (s *Server) localDeviceList(ctx context.Context, op, user string) (*wire.DeviceListResult, error) {
	local, err := s.localUser(op, user)
	if err != nil {
		return nil, err
	}
	found, err := s.readLists(ctx, []string{local})
	if err != nil {
		return nil, internal(op, err)
	}
	e, ok := found[local]
	if !ok {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device list for %s", user)
	}
	return listResult(s.userAddress(local), e), nil
}

// localUser resolves a user address of this domain. Other domains need
// federation, which this server does not offer yet.
func (s *Server) localUser(op, user string) (string, error) {
	if !strings.Contains(user, "@") {
		user += "@" + s.cfg.Domain
	}
	u, err := identity.NormalizeUser(user)
	if err != nil {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid user address %q", user)
	}
	if u.Domain != s.cfg.Domain {
		return "", wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "user %s is on another server; federation is not available", u)
	}
	return u.Local, nil
}

// claimKeyPackages hands out one KeyPackage per active device on each
// user's signed list, all or nothing.
func (ss *session) claimKeyPackages(m *wire.ClaimKeyPackages) (*wire.ServerFrame, error) {
	const op = "homeserver.ClaimKeyPackages"
	if n := len(m.GetUsers()); n == 0 || n > 64 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "claim for 1..64 users")
	}
	if len(m.GetExcludeDevices()) > 1024 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "too many excluded devices")
	}
	users := m.GetUsers()
	var remote map[string][]string
	if ss.s.fed != nil {
		users, remote = ss.s.fed.Queries.SplitUsers(m.GetUsers())
	}
	res := &wire.ClaimResult{}
	if len(users) > 0 {
		r, err := ss.s.claimLocal(ss.ctx, op, users, m.GetExcludeDevices())
		if err != nil {
			return nil, err
		}
		res.Packages = r.Packages
	}
	for d, us := range remote {
		r, err := ss.s.fed.Queries.ClaimRemote(ss.ctx, d, us, m.GetExcludeDevices(), ss.s.deviceAddress(ss.userName, ss.deviceID))
		if err != nil {
			return nil, err
		}
		res.Packages = append(res.Packages, r.Packages...)
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Claim{Claim: res}}, nil
}

// claimLocal hands out one KeyPackage per active device on each local
// user's signed list, all or nothing.
func (s *Server) claimLocal(ctx context.Context, op string, users, excludeDevices []string) (*wire.ClaimResult, error) {
	if n := len(users); n == 0 || n > 64 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "claim for 1..64 users")
	}
	exclude := map[string]bool{}
	for _, d := range excludeDevices {
		exclude[d] = true
	}
	var locals []string
	for _, u := range users {
		l, err := s.localUser(op, u)
		if err != nil {
			return nil, err
		}
		locals = append(locals, l)
	}
	res := &wire.ClaimResult{}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		res.Packages = nil
		for _, local := range locals {
			if err := s.claimForUser(op, tx, local, exclude, res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal(op, err)
	}
	return res, nil
}

func (s *Server) claimForUser(op string, tx *storage.Tx, local string, exclude map[string]bool, res *wire.ClaimResult) error {
	u, err := tx.UserByName(local)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no user %s", s.userAddress(local))
	} else if err != nil {
		return err
	}
	sl, err := tx.DeviceList(u.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "%s has no device list", s.userAddress(local))
	} else if err != nil {
		return err
	}
	l, err := identity.UnmarshalDeviceList(sl.List)
	if err != nil {
		return err
	}
	for _, ld := range l.Devices {
		addr := s.deviceAddress(local, ld.DeviceID)
		if exclude[addr] {
			continue
		}
		d, err := tx.Device(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.Status != storage.DeviceActive) {
			continue
		} else if err != nil {
			return err
		}
		pkg, last, err := tx.ClaimKeyPackage(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_NO_KEY_PACKAGES, "device %s has no key packages", addr)
		} else if err != nil {
			return err
		}
		res.Packages = append(res.Packages, &wire.ClaimedKeyPackage{User: s.userAddress(local), DeviceId: ld.DeviceID, KeyPackage: pkg, LastResort: last})
	}
	return nil
}
