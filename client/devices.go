package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// keyPackageBatch is how many single-use KeyPackages a device publishes.
const keyPackageBatch = 20

// afterActivation marks the device active, restarts the session so that it
// takes mailbox deliveries, and publishes KeyPackages.
func (c *Client) afterActivation(ctx context.Context) error {
	err := c.st.Update(func(tx *store.Tx) error {
		a, err := tx.Account()
		if err != nil {
			return err
		}
		a.Active, a.LinkCode = true, ""
		return tx.PutAccount(a)
	})
	if err != nil {
		return err
	}
	c.resetSession()
	return c.publishKeyPackages(ctx)
}

// publishKeyPackages makes a batch of KeyPackages and a last-resort one,
// stores their private parts, then publishes them. Without an MLS engine
// there is nothing to publish, and the device cannot be added to groups.
func (c *Client) publishKeyPackages(ctx context.Context) error {
	const op = "client.PublishKeyPackages"
	if c.cfg.Groups == nil {
		return fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	self, err := c.self()
	if err != nil {
		return err
	}
	var pkgs [][]byte
	var lastResort []byte
	err = c.st.Update(func(tx *store.Tx) error {
		for i := 0; i <= keyPackageBatch; i++ {
			kp, err := c.cfg.Groups.NewKeyPackage(self)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if err := tx.PutKeyPackage(kp.Ref, kp.Private); err != nil {
				return err
			}
			if i == keyPackageBatch {
				lastResort = kp.Message
				if err := tx.PutMeta(metaLastResort+string(kp.Ref), []byte{1}); err != nil {
					return err
				}
			} else {
				pkgs = append(pkgs, kp.Message)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = c.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PublishKeyPackages{PublishKeyPackages: &wire.PublishKeyPackages{
		KeyPackages: pkgs, LastResort: lastResort,
	}}})
	if err != nil {
		return err
	}
	return c.st.Update(func(tx *store.Tx) error { return tx.PutMeta(metaKeyPackages, []byte{1}) })
}

const (
	metaKeyPackages = "keypackages-published"
	metaLastResort  = "lastresort/" // + ref: a last-resort package, kept after use
	keyPackagesLow  = 5
)

// ensureKeyPackages publishes KeyPackages if an earlier run could not, or
// when Welcomes used up most of them.
func (c *Client) ensureKeyPackages(ctx context.Context) error {
	var done bool
	left := 0
	c.st.View(func(tx *store.Tx) error {
		done = tx.Meta(metaKeyPackages) != nil
		for _, ref := range tx.KeyPackageRefs() {
			if tx.Meta(metaLastResort+string(ref)) == nil {
				left++
			}
		}
		return nil
	})
	if done && left >= keyPackagesLow {
		return nil
	}
	return c.publishKeyPackages(ctx)
}

// WaitApproval polls until another device approved this pending device,
// then opens the sealed bundle with the link key, checks that the signed
// list holds this device with its own signature key, and activates.
func (c *Client) WaitApproval(ctx context.Context, every time.Duration) error {
	const op = "client.WaitApproval"
	a, err := c.Account()
	if err != nil {
		return err
	}
	if a.Active {
		return nil
	}
	for {
		r, err := c.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}})
		if err != nil && !Retryable(err) {
			return err
		}
		if res := r.GetApproval(); err == nil && len(res.GetSealedBundle()) > 0 {
			return c.acceptApproval(ctx, a, res.GetSealedBundle())
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

func (c *Client) acceptApproval(ctx context.Context, a store.Account, sealed []byte) error {
	const op = "client.WaitApproval"
	dev, err := identity.ParseDevice(a.User + "/" + a.DeviceID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var linkRaw []byte
	if err := c.st.View(func(tx *store.Tx) (err error) { linkRaw, err = tx.Key(store.KeyLink); return }); err != nil {
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
	c.resetSession() // the server authenticates the stream as pending until the next Hello
	self, err := c.self()
	if err != nil {
		return err
	}
	l, err := c.fetchDeviceList(ctx, nil, dev.User)
	if err != nil {
		return err
	}
	if key, _ := c.val.IdentityKey(dev.User); !key.Equal(b.Recovery.Signer().Public()) {
		return wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "the approval's identity key does not sign %s's device list", dev.User)
	}
	if err := c.st.Update(func(tx *store.Tx) error { return tx.PutKey(store.KeyIdentity, []byte(b.Recovery.Text())) }); err != nil {
		return err
	}
	mine := self.SignatureKey.Public().(ed25519.PublicKey)
	if d, ok := l.Lookup(dev.Device); !ok || !bytes.Equal(d.SignatureKey, mine) {
		// The list does not name this device with its own key (a server
		// that swapped the key it relayed to the approver): fix the list
		// with the identity key this device now holds.
		if err := c.fixOwnEntry(ctx, b.Recovery, l, a, mine); err != nil {
			return err
		}
	}
	return c.afterActivation(ctx)
}

// fixOwnEntry publishes a successor of l in which this device has its own key.
func (c *Client) fixOwnEntry(ctx context.Context, rk identity.RecoveryKey, l *identity.DeviceList, a store.Account, key []byte) error {
	const op = "client.PublishDeviceList"
	now := c.cfg.Now().UnixMilli()
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
	return c.publishList(ctx, op, rk.Signer(), next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: sl}}}
	})
}

// publishList signs l and sends the request frame made by mk.
func (c *Client) publishList(ctx context.Context, op string, s *identity.Signer, l *identity.DeviceList, mk func(*wire.SignedDeviceList) *wire.ClientFrame) error {
	list, sig, err := l.Sign(s)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = c.call(ctx, op, mk(&wire.SignedDeviceList{List: list, Signature: sig}))
	return err
}

// recovery returns the user's recovery key held by this active device.
func (c *Client) recovery() (identity.RecoveryKey, store.Account, error) {
	var text []byte
	var a store.Account
	err := c.st.View(func(tx *store.Tx) (err error) {
		if a, err = tx.Account(); err != nil {
			return err
		}
		text, err = tx.Key(store.KeyIdentity)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return identity.RecoveryKey{}, a, wire.Errorf("client", wire.Code_CODE_PENDING_APPROVAL, "this device holds no identity key (not approved yet)")
	}
	if err != nil {
		return identity.RecoveryKey{}, a, err
	}
	rk, err := identity.ParseRecoveryKey(string(text))
	return rk, a, err
}

// Approve approves a pending device of the same user from its link code:
// it checks the link key the server returns against the code's fingerprint,
// signs a new device list with the device on it and seals the identity
// material to the device's link key.
func (c *Client) Approve(ctx context.Context, code string) (deviceID string, err error) {
	const op = "client.Approve"
	token, fp, err := identity.ParseLinkCode(code)
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	rk, a, err := c.recovery()
	if err != nil {
		return "", err
	}
	r, err := c.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: token}}})
	if err != nil {
		return "", err
	}
	return c.approvePending(ctx, r.GetPendingDevice(), rk, a, fp)
}

// approvePending lists the pending device described by info and seals the
// identity material to its link key, once the key matches fingerprint fp.
func (c *Client) approvePending(ctx context.Context, info *wire.PendingDeviceInfo, rk identity.RecoveryKey, a store.Account, fp string) (string, error) {
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
	cur, err := c.fetchDeviceList(ctx, nil, user)
	if err != nil {
		return "", err
	}
	now := c.cfg.Now().UnixMilli()
	next, err := cur.WithDevice(identity.Device{DeviceID: dev.Device, SignatureKey: info.GetSignatureKey(), Name: info.GetName(), AddedMs: now}, now)
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	sealed, err := identity.SealBundle(linkPub, dev, &identity.Bundle{User: user, Recovery: rk})
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	err = c.publishList(ctx, op, rk.Signer(), next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
			DeviceId: dev.Device, DeviceList: sl, SealedBundle: sealed,
		}}}
	})
	if err != nil {
		return "", err
	}
	if c.cfg.Groups != nil {
		actx, cancel := context.WithTimeout(ctx, addApprovedWait)
		defer cancel()
		if err := c.addToConversations(actx, dev.String()); err != nil {
			// Not fatal: any member adds the device on its next send.
			c.log.Warn("new device not yet added to conversations", "device", dev.String(), "err", err)
		}
	}
	return dev.Device, nil
}

// addApprovedWait bounds how long Approve waits for the new device's
// KeyPackages to add it to this device's conversations.
const addApprovedWait = 20 * time.Second

// addToConversations adds a just-approved device of this user to every
// conversation this device is in, as soon as the device has published
// KeyPackages, so that it receives what follows from the start.
func (c *Client) addToConversations(ctx context.Context, device string) error {
	if err := c.ensureKeyPackages(ctx); err != nil {
		return err
	}
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	var convs []string
	c.st.View(func(tx *store.Tx) error { convs = tx.Conversations(); return nil })
	for _, conv := range convs {
		for {
			err := c.reconcile(ctx, conv)
			if err != nil && !errors.Is(err, errRedo) && !Retryable(err) {
				return err
			}
			in, merr := c.isMember(conv, device)
			if merr != nil || in {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// isMember reports whether device is in conv's group as this device holds it.
func (c *Client) isMember(conv, device string) (bool, error) {
	self, err := c.self()
	if err != nil {
		return false, err
	}
	var in bool
	err = c.st.View(func(tx *store.Tx) error {
		return c.viewGroup(tx, conv, self, pinnedValidator{c.val}, func(g Group) error {
			in = slices.Contains(g.Members(), device)
			return nil
		})
	})
	return in, err
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
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	const op = "client.Devices"
	a, err := c.Account()
	if err != nil {
		return nil, err
	}
	r, err := c.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}})
	if err != nil {
		return nil, err
	}
	var l *identity.DeviceList
	if user, err := identity.ParseUser(a.User); err == nil {
		l, _ = c.fetchDeviceList(ctx, nil, user) // a user with no identity yet has no list
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

// Revoke revokes one of the user's devices with a new signed list without it.
func (c *Client) Revoke(ctx context.Context, deviceID string) error {
	const op = "client.Revoke"
	if err := identity.CheckDeviceID(deviceID); err != nil {
		return wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	rk, a, err := c.recovery()
	if err != nil {
		return err
	}
	if deviceID == a.DeviceID {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a device cannot revoke itself; revoke it from another device")
	}
	user, _ := identity.ParseUser(a.User)
	cur, err := c.fetchDeviceList(ctx, nil, user)
	if err != nil {
		return err
	}
	req := &wire.RevokeDevice{DeviceId: deviceID}
	if _, listed := cur.Lookup(deviceID); listed {
		next, err := cur.WithoutDevice(deviceID, c.cfg.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		list, sig, err := next.Sign(rk.Signer())
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		req.DeviceList = &wire.SignedDeviceList{List: list, Signature: sig}
	}
	if _, err = c.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_RevokeDevice{RevokeDevice: req}}); err != nil {
		return err
	}
	c.unsyncAll()
	if c.cfg.Groups != nil && a.Active {
		// Remove the revoked device from this device's conversations now,
		// rather than at the next send of whoever checks the lists first.
		rctx, cancel := context.WithTimeout(ctx, addApprovedWait)
		defer cancel()
		c.reconcileAll(rctx)
	}
	return nil
}

// reconcileAll brings every conversation's roster in line with the device
// lists, logging (not returning) failures: any member does it on its next
// send anyway.
func (c *Client) reconcileAll(ctx context.Context) {
	if s, err := c.session(ctx); err != nil || s.Resync(ctx) != nil {
		c.log.Warn("not caught up; conversation rosters left to the next send")
		return
	}
	var convs []string
	c.st.View(func(tx *store.Tx) error { convs = tx.Conversations(); return nil })
	for _, conv := range convs {
		var err error
		for try := 0; try < 3; try++ {
			if err = c.reconcile(ctx, conv); !errors.Is(err, errRedo) {
				break
			}
		}
		if err != nil {
			c.log.Warn("conversation roster not updated", "conversation", conv, "err", err)
			continue
		}
		c.markSynced(conv)
	}
}
