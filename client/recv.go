package client

import (
	"context"
	"fmt"
	"time"

	"hearth/client/store"
)

// connectWait bounds how long Receive waits to reach the server, and how
// long catching up may go without any progress (a large backlog is fine as
// long as entries keep flowing). A variable so tests can shorten it.
var connectWait = 20 * time.Second

// Receive calls print for every received message in arrival order (the
// oldest not yet printed first), and removes each from the inbox once print
// returned nil; the server was acknowledged when the message was stored.
// It returns after quiet of silence with nothing new, or never (until ctx
// ends) when quiet is 0.
func (c *Client) Receive(ctx context.Context, quiet time.Duration, print func(store.Message) error) error {
	if c.cfg.Groups == nil {
		return fmt.Errorf("client.Receive: %w", ErrNoE2EE)
	}
	a, err := c.Account()
	if err != nil {
		return err
	}
	if !a.Active {
		return fmt.Errorf("client.Receive: this device is not approved yet")
	}
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if _, err := c.drainInbox(print); err != nil { // what earlier runs received
		return err
	}
	if err := c.ensureKeyPackages(ctx); err != nil {
		c.log.Warn("publishing KeyPackages failed", "err", err)
	}
	cctx, cancel := context.WithTimeout(ctx, connectWait)
	err = s.Sync(cctx)
	for err != nil && cctx.Err() == nil && Retryable(err) {
		err = s.Sync(cctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client.Receive: not connected to the server within %v: %w", connectWait, err)
	}
	if err := s.CatchUp(ctx, connectWait); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client.Receive: %w", err)
	}
	last := time.Now()
	for {
		s.mu.Lock()
		prog := s.progress
		s.mu.Unlock()
		n, err := c.drainInbox(print)
		if err != nil {
			return err
		}
		if n > 0 {
			last = time.Now()
		}
		var t *time.Timer
		var timeout <-chan time.Time
		if quiet > 0 {
			left := quiet - time.Since(last)
			if left <= 0 {
				return nil
			}
			t = time.NewTimer(left)
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
		if t != nil {
			t.Stop()
		}
	}
}

// drainInbox prints and removes queued messages, 100 at a time until the
// inbox is empty.
func (c *Client) drainInbox(print func(store.Message) error) (int, error) {
	const batch = 100
	total := 0
	for {
		var entries []store.InboxEntry
		if err := c.st.View(func(tx *store.Tx) (err error) { entries, err = tx.Inbox(batch); return }); err != nil {
			return total, err
		}
		for _, e := range entries {
			if err := print(e.Message); err != nil {
				return total, err
			}
			if err := c.st.Update(func(tx *store.Tx) error { return tx.DeleteInbox(e.Pos) }); err != nil {
				return total, err
			}
			total++
		}
		if len(entries) < batch {
			return total, nil
		}
	}
}

// History returns the messages of the conversation with user@domain or
// with the given id, as this device holds them, in conversation order.
func (c *Client) History(target string, limit int) ([]store.Message, error) {
	var out []store.Message
	err := c.st.View(func(tx *store.Tx) error {
		conv, ok := conversationFor(tx, target)
		if !ok {
			conv = target
		}
		var err error
		out, err = tx.History(conv, limit)
		return err
	})
	return out, err
}

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
		fctx, cancel := context.WithTimeout(ctx, interval)
		if err := c.Flush(fctx, ""); err != nil && ctx.Err() == nil {
			c.log.Debug("periodic flush", "err", err)
		}
		cancel()
	}
}
