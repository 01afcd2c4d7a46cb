package keydir

import (
	"bytes"
	"context"
	"errors"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const (
	maxSealedBundle       = 64 << 10
	maxKeyPackage         = 64 << 10
	MaxPackagesPerRequest = 100 // KeyPackages one PublishKeyPackages may carry
)

func (s *Directory) PublishIdentity(ctx context.Context, c Caller, m *wire.PublishIdentity) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishIdentity"
	if _, err := identity.ParsePublicKey(m.GetIdentityKey()); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "identity key must be 32 bytes of Ed25519")
	}
	addr := s.userAddress(c.UserName)
	err := s.lists.write(ctx, s.db, c.UserName, func(tx *storage.Tx) error {
		if _, err := tx.IdentityKey(c.UserID); err == nil {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "the identity key is already published")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		l, err := verifyList(op, tx, addr, c.UserID, m.IdentityKey, m.DeviceList, c.DeviceID, "")
		if err != nil {
			return err
		}
		if err := tx.InsertIdentityKey(c.UserID, m.IdentityKey, s.nowMs()); errors.Is(err, storage.ErrConflict) {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "the identity key is already published")
		} else if err != nil {
			return err
		}
		return s.putList(op, tx, c.UserName, c.UserID, l, m.DeviceList, s.nowMs())
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return okFrame(), nil
}

func (s *Directory) PublishDeviceList(ctx context.Context, c Caller, m *wire.PublishDeviceList) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishDeviceList"
	addr := s.userAddress(c.UserName)
	err := s.lists.write(ctx, s.db, c.UserName, func(tx *storage.Tx) error {
		idKey, err := tx.IdentityKey(c.UserID)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no identity key published")
		} else if err != nil {
			return err
		}
		l, err := verifyList(op, tx, addr, c.UserID, idKey, m.GetDeviceList(), c.DeviceID, "")
		if err != nil {
			return err
		}
		return s.putList(op, tx, c.UserName, c.UserID, l, m.DeviceList, s.nowMs())
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return okFrame(), nil
}

// ApproveDevice activates a pending device of the caller's user. From an
// active device it carries the sealed bundle for the new device. A pending
// device may approve itself (docs/decisions/0002: it holds the recovery
// key), with no bundle: the signed list is the proof either way.
func (s *Directory) ApproveDevice(ctx context.Context, c Caller, m *wire.ApproveDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.ApproveDevice"
	self := m.GetDeviceId() == c.DeviceID
	if !c.Active && !self {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "a pending device can only approve itself")
	}
	if n := len(m.GetSealedBundle()); (n == 0 && !self) || n > maxSealedBundle {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "sealed bundle must be 1..%d bytes", maxSealedBundle)
	}
	addr := s.userAddress(c.UserName)
	err := s.lists.write(ctx, s.db, c.UserName, func(tx *storage.Tx) error {
		target, err := tx.Device(m.GetDeviceId())
		if errors.Is(err, storage.ErrNotFound) || (err == nil && target.UserID != c.UserID) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such device")
		} else if err != nil {
			return err
		}
		if target.Status != storage.DevicePending {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device is not pending")
		}
		idKey, err := tx.IdentityKey(c.UserID)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no identity key published")
		} else if err != nil {
			return err
		}
		l, err := verifyList(op, tx, addr, c.UserID, idKey, m.GetDeviceList(), target.ID, target.ID)
		if err != nil {
			return err
		}
		if listedKey, _ := l.Lookup(target.ID); len(target.SignatureKey) > 0 && !bytes.Equal(listedKey.SignatureKey, target.SignatureKey) {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the list gives device %s another signature key than it registered", target.ID)
		}
		if err := s.putList(op, tx, c.UserName, c.UserID, l, m.DeviceList, s.nowMs()); err != nil {
			return err
		}
		return tx.ApproveDevice(target.ID, m.SealedBundle)
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return okFrame(), nil
}

func (s *Directory) FetchApproval(ctx context.Context, c Caller) (*wire.ServerFrame, error) {
	const op = "homeserver.FetchApproval"
	var d *storage.Device
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { d, err = tx.Device(c.DeviceID); return err }); err != nil {
		return nil, wire.Internal(op, err)
	}
	res := &wire.ApprovalResult{Status: wire.DeviceStatus(d.Status)}
	if d.Status == storage.DeviceActive {
		res.SealedBundle = d.SealedBundle
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Approval{Approval: res}}, nil
}

func (s *Directory) ListDevices(ctx context.Context, c Caller) (*wire.ServerFrame, error) {
	const op = "homeserver.ListDevices"
	var ds []*storage.Device
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { ds, err = tx.Devices(c.UserID); return err }); err != nil {
		return nil, wire.Internal(op, err)
	}
	res := &wire.DevicesResult{}
	for _, d := range ds {
		res.Devices = append(res.Devices, &wire.DeviceInfo{DeviceId: d.ID, Name: d.Name, Status: wire.DeviceStatus(d.Status),
			CreatedMs: d.CreatedMs, LastSeenMs: d.LastSeenMs})
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_Devices{Devices: res}}, nil
}

// RevokeDevice revokes one of the caller's user's devices. When the device
// is on the current signed list, the request must carry the successor
// list without it (signed by the identity key, version grown). A pending
// device may only name itself: it is deleted, not kept as revoked (a login
// that gave up waiting for approval withdraws its device).
func (s *Directory) RevokeDevice(ctx context.Context, c Caller, m *wire.RevokeDevice) (*wire.ServerFrame, error) {
	const op = "homeserver.RevokeDevice"
	addr := s.userAddress(c.UserName)
	target := m.GetDeviceId()
	err := s.lists.write(ctx, s.db, c.UserName, func(tx *storage.Tx) error {
		d, err := tx.Device(target)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != c.UserID) {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such device")
		} else if err != nil {
			return err
		}
		if d.Status == storage.DeviceRevoked {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device already revoked")
		}
		if target == c.DeviceID && d.Status == storage.DevicePending {
			// A pending device withdrawing itself (its login gave up
			// waiting for approval): it was never on a list, so it goes.
			return tx.DeletePendingDevice(target)
		}
		if !c.Active {
			return wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "a pending device may only withdraw itself")
		}
		onList, err := listed(tx, c.UserID, target)
		if err != nil {
			return err
		}
		if onList || m.GetDeviceList() != nil {
			idKey, err := tx.IdentityKey(c.UserID)
			if err != nil {
				return err
			}
			mustList := c.DeviceID
			if target == c.DeviceID {
				mustList = ""
			}
			l, err := verifyList(op, tx, addr, c.UserID, idKey, m.GetDeviceList(), mustList, "")
			if err != nil {
				return err
			}
			if _, still := l.Lookup(target); still {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the new device list still includes the revoked device")
			}
			if err := s.putList(op, tx, c.UserName, c.UserID, l, m.DeviceList, s.nowMs()); err != nil {
				return err
			}
		}
		return tx.RevokeDevice(target, s.nowMs()+1)
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return okFrame(), nil
}

func (s *Directory) PublishKeyPackages(ctx context.Context, c Caller, m *wire.PublishKeyPackages) (*wire.ServerFrame, error) {
	const op = "homeserver.PublishKeyPackages"
	pkgs := m.GetKeyPackages()
	if len(pkgs) == 0 && len(m.GetLastResort()) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "no key packages")
	}
	if len(pkgs) > MaxPackagesPerRequest {
		return nil, wire.Errorf(op, wire.Code_CODE_LIMIT, "at most %d key packages per request", MaxPackagesPerRequest)
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
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		n, err := tx.CountKeyPackages(c.DeviceID)
		if err != nil {
			return err
		}
		if n+len(pkgs) > s.cfg.MaxKeyPackages {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "a device may store at most %d key packages (has %d)", s.cfg.MaxKeyPackages, n)
		}
		return tx.AddKeyPackages(c.DeviceID, pkgs, m.GetLastResort(), s.nowMs())
	})
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return okFrame(), nil
}
