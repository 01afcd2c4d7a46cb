package client

import (
	"context"
	"fmt"
)

// Flush sends every queued message in order until the outbox is empty or
// until the message with id until (if not empty) was accepted; see
// outbox.Sender.Flush. It returns ctx's error if it runs out of time.
// Before sending it commits the leave requests of groups where this device
// is an admin (commitLeaves).
func (c *Client) Flush(ctx context.Context, until string) error {
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
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	if ctx.Value(leavesKey{}) == nil {
		if err := c.groups.commitLeaves(context.WithValue(ctx, leavesKey{}, true)); err != nil {
			c.log.Warn("committing leave requests", "err", err)
		}
	}
	return c.out.Flush(ctx, s, until)
}

// leavesKey marks a Flush made while committing leave requests.
type leavesKey struct{}
