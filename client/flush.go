package client

import (
	"context"
	"fmt"
)

// Flush sends queued messages, each conversation in its order and none
// waiting for another, until the message with id until (if not empty) was
// accepted or failed for good (ErrNotDelivered), or with until empty
// until nothing can be sent now; see outbox.Sender.Flush and "Order of
// sending" in doc.go. It returns ctx's error if it runs out of time.
// Before sending it commits the leave requests of groups where this device
// is an admin (commitLeaves). Receipts in their coalescing window while a
// Receive runs (receipts_flush.go) are left for it, unless until is one.
func (c *Client) Flush(ctx context.Context, until string) error {
	return c.flush(ctx, until, false)
}

// flushHeld is Flush (until empty) that sends the receipts waiting in
// their coalescing window too.
func (c *Client) flushHeld(ctx context.Context) error {
	return c.flush(ctx, "", true)
}

func (c *Client) flush(ctx context.Context, until string, held bool) error {
	if c.cfg.Groups == nil {
		return fmt.Errorf("client.Flush: %w", ErrNoE2EE)
	}
	s, err := c.link.session(ctx)
	if err != nil {
		return err
	}
	if err := c.kp.ensure(ctx); err != nil {
		return err
	}
	defer c.sealer.prewarm(ctx, c.out.Settling())() // roster checks in the connection's first round trip
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	if _, err := c.recv.retryParked(ctx, "", true); err != nil { // each Flush tries (at most once a second)
		c.log.Warn("retrying parked conversations", "err", err)
	}
	if ctx.Value(leavesKey{}) == nil {
		if err := c.groups.commitLeaves(context.WithValue(ctx, leavesKey{}, true)); err != nil {
			c.log.Warn("committing leave requests", "err", err)
		}
	}
	if held {
		return c.out.FlushHeld(ctx, s, nil)
	}
	return c.out.Flush(ctx, s, until)
}

// leavesKey marks a Flush made while committing leave requests.
type leavesKey struct{}

// Connect waits until this device's session with its server is connected
// and authenticated, or ctx ends. Commands use it to tell "the server
// cannot be reached" from "nothing arrived". When Connect started the
// session, the next Receive catches up to the mailbox head the server
// announced as it connected, and asks for none of its own.
func (c *Client) Connect(ctx context.Context) error {
	s, err := c.link.connect(ctx)
	if err != nil {
		return err
	}
	_, err = s.Live(ctx)
	return err
}
