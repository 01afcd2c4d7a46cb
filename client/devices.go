package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"hearth/client/e2ee"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// keyPackageBatch is how many single-use KeyPackages a device publishes.
const keyPackageBatch = 20

// afterActivation runs once the account says this device is active: it
// restarts the session so that it takes mailbox deliveries, and publishes
// KeyPackages.
func (c *Client) afterActivation(ctx context.Context) error {
	c.resetSession()
	return c.publishKeyPackages(ctx)
}

// afterApproval adds a device this device just approved to its
// conversations. Not fatal: any member adds the device on its next send.
func (c *Client) afterApproval(ctx context.Context, device string) {
	if c.cfg.Groups == nil {
		return
	}
	actx, cancel := context.WithTimeout(ctx, addApprovedWait)
	defer cancel()
	if err := c.addToConversations(actx, device); err != nil {
		c.log.Warn("new device not yet added to conversations", "device", device, "err", err)
	}
}

// afterRevoke removes a device this device revoked from its conversations
// now, rather than at the next send of whoever checks the lists first.
func (c *Client) afterRevoke(ctx context.Context, active bool) {
	c.unsyncAll()
	if c.cfg.Groups != nil && active {
		rctx, cancel := context.WithTimeout(ctx, addApprovedWait)
		defer cancel()
		c.reconcileAll(rctx)
	}
}

// publishKeyPackages makes a batch of KeyPackages and a last-resort one,
// stores their private parts, then publishes them. Without an MLS engine
// there is nothing to publish, and the device cannot be added to groups.
func (c *Client) publishKeyPackages(ctx context.Context) error {
	const op = "client.PublishKeyPackages"
	if c.cfg.Groups == nil {
		return fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	self, err := c.acct.Self()
	if err != nil {
		return err
	}
	var pkgs [][]byte
	var lastResort []byte
	err = c.st.Update(func(tx *store.Tx) error {
		for i := 0; i <= keyPackageBatch; i++ {
			kp, err := c.mls.NewKeyPackage(self)
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
			if err != nil && !errors.Is(err, errRedo) && !session.Retryable(err) {
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
	self, err := c.acct.Self()
	if err != nil {
		return false, err
	}
	var in bool
	err = c.st.View(func(tx *store.Tx) error {
		return c.viewGroup(tx, conv, self, c.dir.Pinned(), func(g e2ee.Group) error {
			in = slices.Contains(g.Members(), device)
			return nil
		})
	})
	return in, err
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
