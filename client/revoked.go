package client

import (
	"context"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// Devices an admin revoked stay on the user's signed list until one of the
// user's devices re-signs it (the server cannot: it does not hold the
// identity key). The server names them at every connection and in a push;
// this device then publishes the list without them and removes them from
// its conversations, and other users' clients drop them from theirs when
// they see the new list.

// dropRevokedWait bounds one background run of dropRevoked.
const dropRevokedWait = 30 * time.Second

// onRevokedListed starts dropRevoked in the background, once at a time;
// Close waits for it.
func (c *Client) onRevokedListed(ids []string) {
	c.mu.Lock()
	if c.dropping || c.closing {
		c.mu.Unlock()
		return
	}
	c.dropping = true
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		defer func() { c.mu.Lock(); c.dropping = false; c.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(context.Background(), dropRevokedWait)
		defer cancel()
		if err := c.dropRevoked(ctx, ids); err != nil {
			c.log.Warn("revoked devices left on the signed list", "devices", ids, "err", err)
		}
	}()
}

// dropRevoked publishes this user's device list without the named
// devices and removes them from this device's conversations. A device
// without the identity key (not approved yet) leaves it to the others.
func (c *Client) dropRevoked(ctx context.Context, ids []string) error {
	const op = "client.DropRevoked"
	rk, a, err := c.recovery()
	if wire.Is(err, wire.Code_CODE_PENDING_APPROVAL) || (err == nil && !a.Active) {
		return nil
	}
	if err != nil {
		return err
	}
	user, err := identity.ParseUser(a.User)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		cur, err := c.fetchDeviceList(ctx, nil, user)
		if err != nil {
			return err
		}
		next, changed := cur, false
		for _, id := range ids {
			if _, listed := next.Lookup(id); !listed || id == a.DeviceID {
				continue
			}
			if next, err = next.WithoutDevice(id, c.cfg.Now().UnixMilli()); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			break // another device of the user did it
		}
		err = c.publishList(ctx, op, rk.Signer(), next, func(sl *wire.SignedDeviceList) *wire.ClientFrame {
			return &wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: sl}}}
		})
		if wire.Is(err, wire.Code_CODE_VERSION) && try < 2 {
			continue // a list was published meanwhile: start from it
		}
		if err != nil {
			return err
		}
		c.log.Info("revoked devices taken off the signed list", "devices", len(ids))
		break
	}
	c.unsyncAll()
	if c.cfg.Groups != nil {
		c.reconcileAll(ctx)
	}
	return nil
}
