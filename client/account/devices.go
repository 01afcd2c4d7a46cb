package account

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// WaitApproval polls until another device approved this pending device,
// then opens the sealed bundle with the link key, checks that the signed
// list holds this device with its own signature key, and activates.
func (m *Manager) WaitApproval(ctx context.Context, every time.Duration) error {
	const op = "client.WaitApproval"
	a, err := m.Account()
	if err != nil {
		return err
	}
	if a.Active {
		return nil
	}
	for {
		r, err := m.cfg.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}})
		if err != nil && !session.Retryable(err) {
			return err
		}
		if res := r.GetApproval(); err == nil && len(res.GetSealedBundle()) > 0 {
			return m.acceptApproval(ctx, a, res.GetSealedBundle())
		} else if res.GetStatus() == wire.DeviceStatus_DEVICE_STATUS_REVOKED {
			return wire.E(op, wire.Code_CODE_DEVICE_REVOKED)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-time.After(every):
		}
	}
}

func (m *Manager) acceptApproval(ctx context.Context, a store.Account, sealed []byte) error {
	const op = "client.WaitApproval"
	dev, err := identity.ParseDevice(a.User + "/" + a.DeviceID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var linkRaw []byte
	if err := m.cfg.Store.View(func(tx *store.Tx) (err error) { linkRaw, err = tx.Key(store.KeyLink); return }); err != nil {
		return fmt.Errorf("%s: link key: %w", op, err)
	}
	link, err := identity.ParseLinkPrivateKey(linkRaw)
	if err != nil {
		return fmt.Errorf("%s: link key: %w", op, err)
	}
	b, err := identity.OpenBundle(link, dev, sealed)
	if err != nil {
		return wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	m.cfg.ResetSession() // the server authenticates the stream as pending until the next Hello
	self, err := m.Self()
	if err != nil {
		return err
	}
	l, err := m.cfg.Dir.Fetch(ctx, nil, dev.User)
	if err != nil {
		return err
	}
	if key, _ := m.cfg.Dir.IdentityKey(dev.User); !key.Equal(b.Identity.Public()) {
		return wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "the approval's identity key does not sign %s's device list", dev.User)
	}
	if err := m.putIdentity(b.Identity); err != nil {
		return err
	}
	mine := self.SignatureKey.Public().(ed25519.PublicKey)
	if d, ok := l.Lookup(dev.Device); !ok || !bytes.Equal(d.SignatureKey, mine) {
		// The list does not name this device with its own key (a server
		// that swapped the key it relayed to the approver): fix the list
		// with the identity key this device now holds.
		if err := m.fixOwnEntry(ctx, b.Identity, l, a, mine); err != nil {
			return err
		}
	}
	keep := func(*store.Tx) error { return nil }
	if len(b.History) > 0 && m.cfg.History != nil {
		keep = func(tx *store.Tx) error { return m.cfg.History.Keep(tx, b.History) }
	}
	if err := m.activateWith(ctx, keep); err != nil {
		return err
	}
	if len(b.History) > 0 && m.cfg.History != nil {
		if err := m.cfg.History.Import(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrHistoryPending, err)
		}
	}
	return nil
}

// ErrHistoryPending is wrapped by WaitApproval when this device is
// approved and active but the history the approving device sent is not
// imported yet: the History keeps it for a later try.
var ErrHistoryPending = errors.New("this device is approved and active, but the history the approving device sent is not imported yet")

// fixOwnEntry publishes a successor of l in which this device has its own key.
func (m *Manager) fixOwnEntry(ctx context.Context, ik *identity.Signer, l *identity.DeviceList, a store.Account, key []byte) error {
	const op = "client.PublishDeviceList"
	now := m.cfg.Now().UnixMilli()
	next := l
	if _, ok := l.Lookup(a.DeviceID); ok {
		var err error
		if next, err = l.WithoutDevice(a.DeviceID, now); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	next, err := next.WithDevice(identity.Device{DeviceID: a.DeviceID, SignatureKey: key, Name: a.DeviceName, AddedMs: now}, now)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return m.publishList(ctx, op, ik, next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: sl}}}
	})
}

// publishList signs l and sends the request frame made by mk.
func (m *Manager) publishList(ctx context.Context, op string, s *identity.Signer, l *identity.DeviceList, mk func(*wire.SignedDeviceList) *wire.ClientFrame) error {
	list, sig, err := l.Sign(s)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = m.cfg.Call(ctx, op, mk(&wire.SignedDeviceList{List: list, Signature: sig}))
	return err
}

// identityKey returns the user's identity signing key held by this
// device. A profile of an older version that holds the recovery key text
// instead gets it replaced by the identity key it derives (the recovery
// key is never kept on a device; docs/decisions/0008-device-secrets.md).
func (m *Manager) identityKey() (*identity.Signer, store.Account, error) {
	var raw []byte
	var a store.Account
	err := m.cfg.Store.View(func(tx *store.Tx) (err error) {
		if a, err = tx.Account(); err != nil {
			return err
		}
		raw, err = tx.Key(store.KeyIdentity)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, a, wire.Errorf("client", wire.Code_CODE_PENDING_APPROVAL, "this device holds no identity key (not approved yet)")
	}
	if err != nil {
		return nil, a, err
	}
	defer clear(raw)
	if len(raw) == ed25519.SeedSize {
		ik, err := identity.SignerFromSeed(raw)
		return ik, a, err
	}
	rk, err := identity.ParseRecoveryKey(string(raw))
	if err != nil {
		return nil, a, fmt.Errorf("client: stored identity key: %w", err)
	}
	ik := rk.Signer()
	if err := m.putIdentity(ik); err != nil {
		return nil, a, err
	}
	m.cfg.Log.Info("the recovery key stored by an older version was replaced by the identity key it derives")
	return ik, a, nil
}

// IdentityPublic returns the user's identity key, from the identity
// signing key this device holds (store.ErrNotFound wrapped in a
// PENDING_APPROVAL error while it holds none).
func (m *Manager) IdentityPublic() (identity.PublicKey, error) {
	ik, _, err := m.identityKey()
	if err != nil {
		return identity.PublicKey{}, err
	}
	return ik.Public(), nil
}

// putIdentity stores the identity signing key.
func (m *Manager) putIdentity(ik *identity.Signer) error {
	seed := ik.Seed()
	defer clear(seed)
	return m.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutKey(store.KeyIdentity, seed) })
}

// Approve approves a pending device of the same user from its link code:
// it checks the link key the server returns against the code's fingerprint,
// signs a new device list with the device on it and seals the identity
// material to the device's link key.
func (m *Manager) Approve(ctx context.Context, code string) (deviceID string, err error) {
	return m.ApproveWith(ctx, code, ApproveOptions{})
}

// approvePending lists the pending device described by info and seals the
// identity material to its link key, once the key matches fingerprint fp.
func (m *Manager) approvePending(ctx context.Context, info *wire.PendingDeviceInfo, ik *identity.Signer, a store.Account, fp string, opts ApproveOptions) (string, error) {
	const op = "client.Approve"
	linkPub, err := identity.ParseLinkPublicKey(info.GetLinkPublicKey())
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	if err := identity.CheckLinkKey(linkPub, fp); err != nil {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "the pending device's key does not match the link code (%v): not approved", err)
	}
	if len(info.GetSignatureKey()) == 0 {
		return "", wire.Errorf(op, wire.Code_CODE_UNAVAILABLE,
			"the server did not return the pending device's signature key (Login.signature_key, docs/decisions/0002); cannot list it")
	}
	user, _ := identity.ParseUser(a.User)
	dev, err := identity.ParseDevice(a.User + "/" + info.GetDeviceId())
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	pd := PendingDevice{ID: dev.Device, Name: info.GetName(), LinkFingerprint: strings.ToUpper(fp),
		Fingerprint: KeyFingerprint(info.GetSignatureKey())}
	if opts.Confirm != nil {
		if err := opts.Confirm(pd); err != nil {
			return "", fmt.Errorf("%s: %w", op, err)
		}
	}
	var history []byte
	if opts.History != nil {
		if history, err = opts.History(ctx, pd); err != nil {
			return "", fmt.Errorf("%s: history for the new device: %w", op, err)
		}
	}
	sealed, err := identity.SealBundle(linkPub, dev, &identity.Bundle{User: user, Identity: ik, History: history})
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	for try := 0; ; try++ {
		cur, err := m.cfg.Dir.Fetch(ctx, nil, user)
		if err != nil {
			return "", err
		}
		now := m.cfg.Now().UnixMilli()
		if cur, err = m.withoutServerRevoked(ctx, cur, now); err != nil {
			return "", err
		}
		next, err := cur.WithDevice(identity.Device{DeviceID: dev.Device, SignatureKey: info.GetSignatureKey(), Name: info.GetName(), AddedMs: now}, now)
		if err != nil {
			return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
		}
		err = m.publishList(ctx, op, ik, next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
			return &wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
				DeviceId: dev.Device, DeviceList: sl, SealedBundle: sealed,
			}}}
		})
		if wire.Is(err, wire.Code_CODE_VERSION) && try < 2 {
			continue // another device published a list meanwhile (say, dropping a revoked one): start from it
		}
		if err != nil {
			return "", err
		}
		break
	}
	m.cfg.Approved(ctx, dev.String())
	return dev.Device, nil
}

// Device is one of the user's devices as the server lists it, and whether
// the user's signed list (verified here) includes it.
type Device struct {
	ID       string
	Name     string
	Status   string // pending, active, revoked
	Created  time.Time
	LastSeen time.Time
	Listed   bool // on the verified signed device list
	This     bool // this device
}

// Devices lists the user's devices.
func (m *Manager) Devices(ctx context.Context) ([]Device, error) {
	const op = "client.Devices"
	a, err := m.Account()
	if err != nil {
		return nil, err
	}
	r, err := m.cfg.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}})
	if err != nil {
		return nil, err
	}
	var l *identity.DeviceList
	if user, err := identity.ParseUser(a.User); err == nil {
		l, _ = m.cfg.Dir.Fetch(ctx, nil, user) // a user with no identity yet has no list
	}
	var out []Device
	for _, d := range r.GetDevices().GetDevices() {
		dev := Device{
			ID: d.GetDeviceId(), Name: d.GetName(), Status: statusText(d.GetStatus()),
			Created: time.UnixMilli(d.GetCreatedMs()).UTC(), This: d.GetDeviceId() == a.DeviceID,
		}
		if d.GetLastSeenMs() > 0 {
			dev.LastSeen = time.UnixMilli(d.GetLastSeenMs()).UTC()
		}
		if l != nil {
			_, dev.Listed = l.Lookup(d.GetDeviceId())
		}
		out = append(out, dev)
	}
	return out, nil
}

func statusText(s wire.DeviceStatus) string {
	switch s {
	case wire.DeviceStatus_DEVICE_STATUS_PENDING:
		return "pending"
	case wire.DeviceStatus_DEVICE_STATUS_ACTIVE:
		return "active"
	case wire.DeviceStatus_DEVICE_STATUS_REVOKED:
		return "revoked"
	}
	return "unknown"
}

// withoutServerRevoked drops from l the devices the server lists as
// revoked: an admin's revoke, which the server cannot sign into the list
// (the user's devices drop them when they learn of it, DropRevoked). The
// server refuses a new list that still names one, so an approval or a
// revoke made before that drop would fail ("device list names device …
// that is not active"; the churn test hit it).
func (m *Manager) withoutServerRevoked(ctx context.Context, l *identity.DeviceList, nowMs int64) (*identity.DeviceList, error) {
	r, err := m.cfg.CallIdempotent(ctx, "client.ListDevices", &wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}})
	if err != nil {
		return nil, err
	}
	for _, d := range r.GetDevices().GetDevices() {
		if d.GetStatus() != wire.DeviceStatus_DEVICE_STATUS_REVOKED {
			continue
		}
		if _, listed := l.Lookup(d.GetDeviceId()); listed {
			if l, err = l.WithoutDevice(d.GetDeviceId(), nowMs); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// Revoke revokes one of the user's devices with a new signed list without it.
func (m *Manager) Revoke(ctx context.Context, deviceID string) error {
	const op = "client.Revoke"
	if err := identity.CheckDeviceID(deviceID); err != nil {
		return wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	ik, a, err := m.identityKey()
	if err != nil {
		return err
	}
	if deviceID == a.DeviceID {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a device cannot revoke itself; revoke it from another device")
	}
	user, _ := identity.ParseUser(a.User)
	cur, err := m.cfg.Dir.Fetch(ctx, nil, user)
	if err != nil {
		return err
	}
	req := &wire.RevokeDevice{DeviceId: deviceID}
	if _, listed := cur.Lookup(deviceID); listed {
		now := m.cfg.Now().UnixMilli()
		next, err := cur.WithoutDevice(deviceID, now)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if next, err = m.withoutServerRevoked(ctx, next, now); err != nil {
			return err
		}
		list, sig, err := next.Sign(ik)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		req.DeviceList = &wire.SignedDeviceList{List: list, Signature: sig}
	}
	if _, err = m.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_RevokeDevice{RevokeDevice: req}}); err != nil {
		return err
	}
	m.cfg.Revoked(ctx, a.Active)
	return nil
}

// DropRevoked publishes this user's device list without the devices ids
// (which the server listed as revoked). A device without the identity key
// (not approved yet) leaves it to the others and reports skipped.
func (m *Manager) DropRevoked(ctx context.Context, ids []string) (skipped bool, err error) {
	const op = "client.DropRevoked"
	ik, a, err := m.identityKey()
	if wire.Is(err, wire.Code_CODE_PENDING_APPROVAL) || (err == nil && !a.Active) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	user, err := identity.ParseUser(a.User)
	if err != nil {
		return false, err
	}
	for try := 0; ; try++ {
		cur, err := m.cfg.Dir.Fetch(ctx, nil, user)
		if err != nil {
			return false, err
		}
		next, changed := cur, false
		for _, id := range ids {
			if _, listed := next.Lookup(id); !listed || id == a.DeviceID {
				continue
			}
			if next, err = next.WithoutDevice(id, m.cfg.Now().UnixMilli()); err != nil {
				return false, err
			}
			changed = true
		}
		if !changed {
			return false, nil // another device of the user did it
		}
		err = m.publishList(ctx, op, ik, next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
			return &wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: sl}}}
		})
		if wire.Is(err, wire.Code_CODE_VERSION) && try < 2 {
			continue // a list was published meanwhile: start from it
		}
		if err != nil {
			return false, err
		}
		m.cfg.Log.Info("revoked devices taken off the signed list", "devices", len(ids))
		return false, nil
	}
}

// activate marks the device active and runs Activated. A first device's
// recovery key, kept only so that an interrupted login could show it
// again, is deleted and the file compacted so no copy stays on disk.
func (m *Manager) activate(ctx context.Context) error {
	return m.activateWith(ctx, func(*store.Tx) error { return nil })
}

// activateWith is activate that also runs keep in the transaction that
// marks the device active.
func (m *Manager) activateWith(ctx context.Context, keep func(*store.Tx) error) error {
	hadRecovery := false
	err := m.cfg.Store.Update(func(tx *store.Tx) error {
		a, err := tx.Account()
		if err != nil {
			return err
		}
		if err := keep(tx); err != nil {
			return err
		}
		a.Active, a.LinkCode = true, ""
		if _, err := tx.Key(store.KeyRecoveryPending); err == nil {
			hadRecovery = true
			if err := tx.DeleteKey(store.KeyRecoveryPending); err != nil {
				return err
			}
		}
		return tx.PutAccount(a)
	})
	if err != nil {
		return err
	}
	if hadRecovery {
		if err := m.cfg.Store.Compact(); err != nil {
			return err
		}
	}
	return m.cfg.Activated(ctx)
}
