package client

import (
	"context"
	"strings"
	"time"

	"hearth/client/store"
)

// Receipts are coalesced (docs/receipts.md, "Coalescing"): while Receive
// runs, a receipt it queues waits in the outbox for Config.ReceiptWindow
// from the moment the first receipt of its kind and conversation was
// queued, and every receipt of that kind and conversation queued
// meanwhile is folded into it (receipts.queue). When the window ends the
// receipt flusher sends it; when Receive returns, it sends every receipt
// still waiting at once. A receipt waits only while a Receive runs: a
// one-shot command that queues one (send, read) sends it in its own
// Flush, as nothing would send it later. Waiting receipts are in their own
// send queue (rcptQueue), so they hold back no message of their
// conversation.

// defaultReceiptWindow is Config.ReceiptWindow's default: at most one
// receipt of each kind per conversation and second while messages keep
// coming, and a ✓✓ at most a second later than without a window.
const defaultReceiptWindow = time.Second

// receiptRetryMax bounds the wait of the receipt flusher after a flush
// that failed (the server unreachable): it tries again then, or on the
// next receipt.
const receiptRetryMax = 30 * time.Second

// receiptInterruptLimit bounds the last flush of receipts when Receive is
// interrupted (its context ended) while connected: what is not sent by
// then stays queued for the next run.
const receiptInterruptLimit = 2 * time.Second

// rcptQueuePrefix starts the send queue of the receipts of a
// conversation: "rcpt/" and the conversation id.
const rcptQueuePrefix = "rcpt/"

func rcptQueue(conv string) string { return rcptQueuePrefix + conv }

// receiptQueued wakes the receipt flusher of a running Receive, and
// notes for Close that this process queued a receipt. It is called once
// the receipt is committed, so that the flusher, woken, reads it.
func (c *Client) receiptQueued() {
	c.rcptNew.Store(true)
	c.rcptUnread.Store(true)
	select {
	case c.rcptKick <- struct{}{}:
	default:
	}
}

// receiptHold is the outbox's Config.Hold: a receipt that was never tried
// waits until the window from its creation ends, while a Receive runs
// (which sends it then). One that was tried and failed does not wait
// (it is sent by every flush until it goes), nor does one whose creation
// time is ahead of the clock (the clock went back).
func (c *Client) receiptHold(it store.OutboxItem) time.Time {
	if c.cfg.ReceiptWindow <= 0 || c.rcptHolding.Load() == 0 || !isCoalesced(it) ||
		it.Attempts > 0 || it.LastError != "" || it.Created.After(c.cfg.Now()) {
		return time.Time{}
	}
	return it.Created.Add(c.cfg.ReceiptWindow)
}

// isCoalesced reports whether it is a receipt in a receipts send queue.
func isCoalesced(it store.OutboxItem) bool {
	return it.Body != nil && it.Payload == nil && strings.HasPrefix(it.Queue, rcptQueuePrefix)
}

// receiptsDue returns when the first receipt waiting in the outbox is due
// (now or earlier when one does not wait), and whether any waits.
func (c *Client) receiptsDue() (time.Time, bool) {
	var due time.Time
	found := false
	// A Peek reading past the receipts whose settling is put off, as
	// Flush does: a View would commit that (and the printed inbox
	// entries put off) in a transaction of their own, once per batch.
	settling := c.out.Settling()
	c.st.Peek(func(tx *store.Tx) error {
		heads, err := tx.OutboxHeadsSkipping(settling)
		if err != nil {
			return err
		}
		for _, it := range heads {
			if !isReceiptQueued(it) {
				continue
			}
			d := c.receiptHold(it)
			if d.IsZero() {
				d = c.cfg.Now()
			}
			if !found || d.Before(due) {
				due, found = d, true
			}
		}
		return nil
	})
	return due, found
}

// receiptFlusher sends the receipts queued while Receive runs: one Flush
// at a time, when the first window ends (a timer; none while no receipt
// waits, so an idle receiver uses no CPU).
type receiptFlusher struct {
	c    *Client
	stop context.CancelFunc
	done chan struct{}
	kick chan struct{} // receiveLoop: something was stored
}

// startReceiptFlusher starts the flusher of a Receive; receipts wait
// their window from now until finish.
func (c *Client) startReceiptFlusher(ctx context.Context) *receiptFlusher {
	c.rcptHolding.Add(1)
	c.rcptUnread.Store(true) // what an earlier run left is read after the first batch
	fctx, cancel := context.WithCancel(ctx)
	f := &receiptFlusher{c: c, stop: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	go f.run(fctx)
	return f
}

// poke tells the flusher that deliveries or reads were stored (and their
// receipts with them, committed).
func (f *receiptFlusher) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *receiptFlusher) run(ctx context.Context) {
	defer close(f.done)
	c := f.c
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false // the timer runs; a receipt queued meanwhile is due no earlier
	var retry time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.rcptKick:
		case <-f.kick:
			if !c.rcptUnread.Load() {
				continue // no receipt queued since the last read: nothing to read
			}
		case <-timer.C:
			armed = false
		}
		if armed {
			continue
		}
		c.rcptUnread.Store(false) // before the read: one queued from now on is read next time
		due, ok := c.receiptsDue()
		if !ok {
			continue
		}
		if wait := due.Sub(c.cfg.Now()); wait > 0 {
			timer.Reset(wait)
			armed = true
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, flushEveryLimit)
		err := c.Flush(fctx, "")
		cancel()
		if ctx.Err() != nil {
			return
		}
		// A receipt still due was not sent (an error, or one left for a
		// later flush after its tries): try again after a growing wait,
		// not at once. What was queued meanwhile waits its window.
		due, ok = c.receiptsDue()
		switch {
		case ok && !due.After(c.cfg.Now()):
			if err != nil {
				c.log.Debug("sending receipts", "err", err)
			}
			retry = min(max(2*retry, c.cfg.ReceiptWindow, 100*time.Millisecond), receiptRetryMax)
			timer.Reset(retry)
			armed = true
		case ok:
			retry = 0
			timer.Reset(due.Sub(c.cfg.Now()))
			armed = true
		default:
			retry = 0
		}
	}
}

// finish stops the flusher and sends every receipt still waiting, within
// limit (within receiptInterruptLimit, and only while connected, when ctx
// ended); what cannot be sent stays queued for the next run.
func (f *receiptFlusher) finish(ctx context.Context, limit time.Duration) {
	f.stop()
	<-f.done
	c := f.c
	defer c.rcptHolding.Add(-1)
	if _, ok := c.receiptsDue(); !ok {
		return
	}
	if ctx.Err() != nil {
		s, err := c.link.session(ctx)
		if err != nil {
			return
		}
		if _, connected, _ := s.Progress(); !connected {
			return
		}
		ctx, limit = context.WithoutCancel(ctx), receiptInterruptLimit
	}
	fctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := c.flushHeld(fctx); err != nil {
		c.log.Debug("sending receipts", "err", err)
	}
}

// sendReceiptsOnClose sends, within receiptInterruptLimit, the receipts
// still waiting when a Client that queued some is closed (a one-shot
// command whose own flush ended with its message, before the delivery
// receipts of what it caught up on): only while connected, and only
// receipts. What is not sent stays queued for the next run.
func (c *Client) sendReceiptsOnClose() {
	if !c.rcptNew.Load() || c.cfg.Groups == nil {
		return
	}
	c.link.mu.Lock()
	s := c.link.sess
	c.link.mu.Unlock()
	if s == nil || s.Err() != nil {
		return
	}
	if _, connected, _ := s.Progress(); !connected {
		return
	}
	if _, ok := c.receiptsDue(); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), receiptInterruptLimit)
	defer cancel()
	if err := c.out.FlushHeld(ctx, s, isReceiptQueued); err != nil {
		c.log.Debug("sending receipts on close", "err", err)
	}
}

// isReceiptQueued reports whether it is in a receipts send queue.
func isReceiptQueued(it store.OutboxItem) bool {
	return strings.HasPrefix(it.SendQueue(), rcptQueuePrefix)
}
