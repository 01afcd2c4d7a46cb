package client

import (
	"context"
	"fmt"

	"hearth/client/store"
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
	// What the checks before sending read: KeyPackages left and the
	// rosters to check ahead (prewarm), then, once caught up, the parked
	// conversations and leave requests. A session already caught up
	// (every Flush of a sender that keeps up) reads them all in one read
	// transaction; otherwise the second part is read after CaughtUp, so
	// that it sees what catching up stored.
	_, connected, behind := s.Progress()
	caught := connected && !behind
	leaves := ctx.Value(leavesKey{}) == nil
	var needKP bool
	var warm []string
	var due parkedAndLeaves
	if err := c.st.Peek(func(tx *store.Tx) error {
		needKP, warm = c.kp.needIn(tx), c.sealer.toWarmIn(tx, c.out.Settling())
		if caught {
			due = readParkedAndLeaves(tx, leaves)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := c.kp.ensureIf(ctx, needKP); err != nil {
		return err
	}
	defer c.sealer.warmUp(ctx, warm)() // roster checks in the connection's first round trip
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	if !caught {
		if err := c.st.Peek(func(tx *store.Tx) error { due = readParkedAndLeaves(tx, leaves); return nil }); err != nil {
			due.err = err // logged; the sending goes on
		}
	}
	c.retryParkedAndLeaves(ctx, due, leaves)
	if held {
		return c.out.FlushHeld(ctx, s, nil)
	}
	return c.out.Flush(ctx, s, until)
}

// parkedAndLeaves is what a Flush retries before sending: the parked
// conversations and the leave requests of groups where this device is an
// admin (not read while committing them), and the error reading them.
type parkedAndLeaves struct {
	parked  []parkDue
	leavers []string
	err     error
}

// readParkedAndLeaves reads them in tx; with leaves false only the
// parked conversations.
func readParkedAndLeaves(tx *store.Tx, leaves bool) (d parkedAndLeaves) {
	if d.parked, d.err = parkedIn(tx, ""); d.err != nil || !leaves {
		return d
	}
	d.leavers, d.err = leaversIn(tx)
	return d
}

// retryParkedAndLeaves retries the parked conversations (each Flush
// tries, at most once a second) and then commits the leave requests of
// groups where this device is an admin, unless this Flush is made while
// committing them (leaves false). Failures are logged: the next Flush
// tries again.
func (c *Client) retryParkedAndLeaves(ctx context.Context, due parkedAndLeaves, leaves bool) {
	if due.err != nil {
		c.log.Warn("reading parked conversations and leave requests", "err", due.err)
		return
	}
	if _, err := c.recv.retryDue(ctx, due.parked, true); err != nil {
		c.log.Warn("retrying parked conversations", "err", err)
	}
	if !leaves {
		return
	}
	ctx = context.WithValue(ctx, leavesKey{}, true)
	var err error
	if len(due.parked) > 0 {
		// What was unparked may hold leave requests: read them again.
		err = c.groups.commitLeaves(ctx)
	} else {
		err = c.groups.commitLeavesOf(ctx, due.leavers)
	}
	if err != nil {
		c.log.Warn("committing leave requests", "err", err)
	}
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
