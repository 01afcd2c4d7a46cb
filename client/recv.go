package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"hearth/client/convstate"
	"hearth/client/session"
	"hearth/client/store"
)

// connectWait is the default of Config.ConnectWait: how long Receive waits
// to reach the server, and how long catching up may go without any
// progress (a large backlog is fine as long as entries keep flowing). A
// variable so tests can shorten it.
var connectWait = 20 * time.Second

// Receive calls print for every received message in arrival order (the
// oldest not yet printed first), and removes printed messages from the
// inbox once print returned nil for them; the server was acknowledged when
// the message was stored. Messages are printed as they are stored, also
// while a backlog is still being caught up. It returns after quiet of
// silence with nothing new once caught up, or never (until ctx ends) when
// quiet is 0. Catching up fails only when no mailbox entry was processed
// for Config.ConnectWait.
func (c *Client) Receive(ctx context.Context, quiet time.Duration, print func(store.Message) error) error {
	if c.cfg.Groups == nil {
		return fmt.Errorf("client.Receive: %w", ErrNoE2EE)
	}
	a, err := c.acct.Account()
	if err != nil {
		return err
	}
	if !a.Active {
		return fmt.Errorf("client.Receive: this device is not approved yet")
	}
	s, err := c.link.session(ctx)
	if err != nil {
		return err
	}
	if _, err := c.drainInbox(print, nil); err != nil { // what earlier runs received
		return err
	}
	if err := c.kp.ensure(ctx); err != nil {
		c.log.Warn("publishing KeyPackages failed", "err", err)
	}
	// Learn the server's current mailbox head. The first Receive after a
	// Connect that started the session takes it from that connection's own
	// Sync, sent with the Hello (session.authenticate): waiting for the
	// connection saves a round trip. Otherwise the session's head may be
	// from long ago: ask again.
	learnHead := s.Sync
	if c.link.claimHead(s) {
		learnHead = func(ctx context.Context) error { _, err := s.Live(ctx); return err }
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectWait)
	err = learnHead(cctx)
	for err != nil && cctx.Err() == nil && session.Retryable(err) {
		err = learnHead(cctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client.Receive: not connected to the server within %v: %w", c.cfg.ConnectWait, err)
	}
	return c.receiveLoop(ctx, s, quiet, print)
}

// receiveLoop prints what arrives until quiet after catching up, a stall
// while catching up, or the end of ctx or the session.
func (c *Client) receiveLoop(ctx context.Context, s *session.Session, quiet time.Duration, print func(store.Message) error) error {
	rf := c.startReceiptFlusher(ctx)
	defer rf.finish(ctx, receiptFlushLimit)
	defer func() {
		if err := c.st.WriteLater(); err != nil { // what drainInbox put off
			c.log.Warn("removing printed messages from the inbox", "err", err)
		}
	}()
	last, progressed := time.Now(), time.Now()
	tried := map[string]time.Time{} // heals tried by this run
	soon := true                    // this run's first retry of parked conversations: now
	for {
		prog, connected, behind := s.Progress()
		caught := !behind && connected
		var parkedNext time.Time // the next retry of a parked conversation
		// Caught up: apply parked conversations whose lists can be fetched
		// now (parked.go), rejoin what this device could not follow and
		// report what it could not decrypt (decision 0006). What they
		// need is read with the inbox to print (every batch comes here):
		// one read; what they store is printed after them.
		var parked []parkDue
		var outOfStep, undecryptable []string
		n, err := c.drainInbox(print, func(tx *store.Tx) (err error) {
			if !caught {
				return nil
			}
			parked, err = parkedIn(tx, "")
			outOfStep, undecryptable = toHealIn(tx)
			return err
		})
		if err != nil {
			return err
		}
		if caught {
			next, err := c.recv.retryDue(ctx, parked, soon)
			soon = false
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.log.Warn("retrying parked conversations", "err", err)
			}
			parkedNext = next
			if len(parked) > 0 {
				err = c.heal.catchUp(ctx, tried) // what was unparked may be out of step now: read again
			} else {
				err = c.heal.catchUpOf(ctx, tried, outOfStep, undecryptable)
			}
			if err != nil && !session.Retryable(err) {
				return err
			}
			if len(parked)+len(outOfStep)+len(undecryptable) > 0 {
				m, err := c.drainInbox(print, nil) // what they stored
				if err != nil {
					return err
				}
				n += m
			}
		}
		rf.poke() // receipts of what arrived (and of what print marked read)
		now := time.Now()
		if n > 0 || behind {
			last = now // quiet counts from the last print once caught up
		}
		if !connected {
			progressed = now // reconnecting is the session's job, not a stall
		}
		var wait time.Duration
		switch {
		case behind:
			if wait = c.cfg.ConnectWait - now.Sub(progressed); wait <= 0 {
				return fmt.Errorf("client.Receive: no mailbox progress for %v while catching up: %w", c.cfg.ConnectWait, context.DeadlineExceeded)
			}
		case quiet > 0:
			if wait = quiet - now.Sub(last); wait <= 0 {
				return nil
			}
		}
		if !behind && !parkedNext.IsZero() {
			// Wake for the parked retry (not before a millisecond: no spin).
			if p := max(parkedNext.Sub(now), time.Millisecond); wait <= 0 || p < wait {
				wait = p
			}
		}
		pending := c.st.Pending()
		if pending && (wait <= 0 || laterWriteIdle < wait) {
			wait = laterWriteIdle
		}
		if err := waitProgress(ctx, s, prog, wait); err != nil {
			return err
		}
		if next, _, _ := s.Progress(); next != prog {
			progressed = time.Now()
		} else if pending {
			// Nothing arrived to carry what drainInbox (or a settled
			// send) put off: commit it now, so that an idle device
			// (a browser tab that is closed next) does not keep it.
			if err := c.st.WriteLater(); err != nil {
				c.log.Warn("writing put-off changes", "err", err)
			}
		}
	}
}

// waitProgress waits for prog to close, for wait (if > 0), or for the end
// of ctx or the session.
func waitProgress(ctx context.Context, s *session.Session, prog <-chan struct{}, wait time.Duration) error {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-prog:
	case <-timeout:
	case <-s.Done():
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// laterWriteIdle is how long Receive leaves writes put off by the store
// (printed inbox entries, settled sends) for the next batch of deliveries
// to carry, before it commits them on their own.
const laterWriteIdle = time.Second

// receiptFlushLimit bounds the last flush of receipts when Receive ends.
const receiptFlushLimit = 10 * time.Second

// drainInbox prints queued messages, 100 at a time until the inbox is
// empty. Removing the printed ones is put off to the store's next write
// (Store.Later: the transaction of the next received batch, or the end of
// Receive), which saves a commit per batch; this process reads on after
// the last position it printed meanwhile. A crash before the removal is
// committed prints those messages again (at least once). first, if not
// nil, reads what else its caller needs in the first read transaction.
func (c *Client) drainInbox(print func(store.Message) error, first func(*store.Tx) error) (int, error) {
	const batch = 100
	c.inboxMu.Lock()
	defer c.inboxMu.Unlock()
	total := 0
	for {
		var entries []store.InboxEntry
		if err := c.st.Peek(func(tx *store.Tx) (err error) {
			if first != nil {
				if err := first(tx); err != nil {
					return err
				}
				first = nil
			}
			entries, err = tx.InboxAfter(c.printed, batch)
			return err
		}); err != nil {
			return total, err
		}
		var printed uint64
		var perr error
		for _, e := range entries {
			if e.Event == "receipt" {
				c.receiptEvent(e.Message) // to OnSignal, not print
				printed = e.Pos
				continue
			}
			if perr = print(e.Message); perr != nil {
				break
			}
			printed = e.Pos
			total++
		}
		if printed > 0 {
			c.printed = printed
			c.st.Later("inbox-printed", func(tx *store.Tx) error { return tx.DeleteInbox(printed) }, nil)
		}
		if perr != nil {
			return total, perr
		}
		if len(entries) < batch {
			return total, nil
		}
	}
}

// History returns the messages of the conversation with user@domain or
// with the given id, as this device holds them, in conversation order.
// For a user that this device has more than one 1:1 conversation with
// (decision 0007), the others come first, each in its own order, and the
// one sends go to last; limit applies to each.
func (c *Client) History(target string, limit int) ([]store.Message, error) {
	var out []store.Message
	err := c.st.View(func(tx *store.Tx) error {
		convs := convstate.Directs(tx, target)
		for _, id := range importedDirects(tx, target) { // from a history archive (history_link.go)
			if !slices.Contains(convs, id) {
				convs = append([]string{id}, convs...)
			}
		}
		if len(convs) == 0 {
			conv, ok := convstate.For(tx, target)
			if !ok {
				conv = target
			}
			convs = []string{conv}
		}
		for _, conv := range convs {
			h, err := tx.History(conv, limit)
			if err != nil {
				return err
			}
			out = append(out, h...)
		}
		me, err := tx.Account()
		if err != nil {
			return nil // not logged in: no messages of this user's
		}
		out, err = withStatus(tx, me.User, out)
		return err
	})
	return out, err
}

// flushEveryLimit bounds one flush of FlushEvery, so that a hung one ends.
const flushEveryLimit = time.Minute

// FlushEvery sends queued messages every interval until ctx ends, for a
// long-running receiver: messages queued by runs that were interrupted go
// out without waiting for the next send.
func (c *Client) FlushEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A flush may take much longer than the interval (a first message
		// to a user creates the conversation); bounding it by the interval
		// would cut every such flush short on a slow machine, forever.
		fctx, cancel := context.WithTimeout(ctx, max(interval, flushEveryLimit))
		if err := c.Flush(fctx, ""); err != nil && ctx.Err() == nil {
			c.log.Debug("periodic flush", "err", err)
		}
		cancel()
	}
}
