package client

import (
	"context"
	"time"
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
// devices (client/account) and removes them from this device's
// conversations. A device without the identity key (not approved yet)
// leaves it to the others.
func (c *Client) dropRevoked(ctx context.Context, ids []string) error {
	skipped, err := c.acct.DropRevoked(ctx, ids)
	if err != nil || skipped {
		return err
	}
	c.unsyncAll()
	if c.cfg.Groups != nil {
		c.reconcileAll(ctx)
	}
	return nil
}
