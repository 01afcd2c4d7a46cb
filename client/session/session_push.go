package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hearth/homeserver/wire"
)

// pushBatch bounds how many queued deliveries are processed together (one
// store transaction).
const pushBatch = 64

// servePushes handles c's pushes in arrival order until c ends. Deliveries
// waiting in the queue are processed in batches of up to pushBatch and
// acknowledged cumulatively once their processing is durable: the Ack is
// owed, and written with the next frame or after the ack delay (ack.go).
func (s *Session) servePushes(ctx context.Context, c *Conn) error {
	for {
		f, err := c.nextPush(ctx)
		if err != nil {
			return err
		}
		switch b := f.GetBody().(type) {
		case *wire.ServerFrame_Delivery:
			if s.cfg.Handler == nil {
				continue
			}
			batch := append([]*wire.Delivery{b.Delivery}, c.popDeliveries(pushBatch-1)...)
			if err := s.process(ctx, batch); err != nil {
				return err
			}
			last := batch[len(batch)-1].GetSeq()
			if err := s.acks.owe(ctx, c, last, len(batch)); err != nil {
				return err
			}
		case *wire.ServerFrame_Closed:
			return wire.E("client.Session", b.Closed.GetCode(), b.Closed.GetMessage())
		case *wire.ServerFrame_DevicesChanged:
			s.revokedListed(b.DevicesChanged.GetRevokedListed())
		case *wire.ServerFrame_Typing, *wire.ServerFrame_Presence, *wire.ServerFrame_PresenceList:
			if s.cfg.OnSignal != nil {
				s.cfg.OnSignal(f)
			}
		}
	}
}

// process hands a batch of deliveries to the handler and records progress.
func (s *Session) process(ctx context.Context, batch []*wire.Delivery) error {
	var err error
	if bh, ok := s.cfg.Handler.(BatchHandler); ok && len(batch) > 1 {
		if err = bh.HandleDeliveries(ctx, batch); err == nil {
			s.advance(batch[len(batch)-1].GetSeq())
			return nil
		}
		s.log.Debug("batch of deliveries failed; one at a time", "n", len(batch), "err", err)
	}
	for _, d := range batch {
		if err := s.cfg.Handler.HandleDelivery(ctx, d); err != nil {
			return fmt.Errorf("client: process delivery %d: %w", d.GetSeq(), err)
		}
		s.advance(d.GetSeq())
	}
	return nil
}

// advance records that every delivery up to seq was processed.
func (s *Session) advance(seq uint64) {
	s.mu.Lock()
	s.processed = max(s.processed, seq)
	s.head = max(s.head, seq)
	s.mu.Unlock()
	s.bump()
}

// popDeliveries takes up to max Delivery pushes from the front of the
// queue without waiting (it stops at any other kind of push).
func (c *Conn) popDeliveries(max int) []*wire.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*wire.Delivery
	for len(out) < max && len(c.pushes) > 0 {
		d := c.pushes[0].GetDelivery()
		if d == nil {
			break
		}
		c.pushes[0] = nil
		c.pushes = c.pushes[1:]
		out = append(out, d)
	}
	return out
}

// bump wakes everyone waiting for progress (CaughtUp, Call).
func (s *Session) bump() {
	s.mu.Lock()
	close(s.progress)
	s.progress = make(chan struct{})
	s.mu.Unlock()
}

// progressChan returns the channel the next bump closes.
func (s *Session) progressChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress
}

// Progress returns a channel closed at the next mailbox progress (or
// connection change), whether a connection is up, and whether the device
// is behind the mailbox head on it.
func (s *Session) Progress() (next <-chan struct{}, connected, behind bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	connected = s.cur != nil
	return s.progress, connected, connected && s.processed < s.head
}

// Live waits for an authenticated connection; requests started on it one
// after another are written in that order (Conn.Start).
func (s *Session) Live(ctx context.Context) (*Conn, error) {
	for {
		s.mu.Lock()
		c, ready, fatal, prog := s.cur, s.ready, s.fatal, s.progress
		s.mu.Unlock()
		if fatal != nil {
			return nil, fatal
		}
		if c != nil && c.Err() == nil {
			return c, nil
		}
		select {
		case <-ready:
		case <-prog:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Call sends one request on the live connection, waiting for one while the
// session reconnects. A connection lost before the response returns an error
// wrapping ErrDisconnected: the request may or may not have been applied.
//
// While a connection's Hello is written but not answered, the request is
// written behind it at once (pipelined, early.go) instead of a round trip
// later.
func (s *Session) Call(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	for {
		s.mu.Lock()
		c, ea, ready, fatal, prog := s.cur, s.early, s.ready, s.fatal, s.progress
		s.mu.Unlock()
		if fatal != nil {
			return nil, fmt.Errorf("%s: %w", op, fatal)
		}
		if c != nil && c.Err() == nil {
			return c.Call(ctx, op, f)
		}
		if ea != nil && ea.c.Err() == nil {
			return s.callEarly(ctx, ea, op, f)
		}
		select {
		case <-ready:
		case <-prog:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
	}
}

// CallNow is Call without waiting for a connection: with none up it fails
// at once with ErrDisconnected. The delivery handler uses it, because the
// session cannot reconnect until the handler returns.
func (s *Session) CallNow(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%s: %w", op, ErrDisconnected)
	}
	return c.Call(ctx, op, f)
}

// Resync asks the server for its current mailbox head (restarting pushes
// after the last processed sequence; re-pushed entries are skipped) and
// waits until everything up to it has been processed. Unlike CaughtUp it
// also covers entries that arrived after the connection was set up.
func (s *Session) Resync(ctx context.Context) error {
	if err := s.Sync(ctx); err != nil {
		return err
	}
	return s.CaughtUp(ctx)
}

// Sync is the first half of Resync: it restarts pushes after the last
// processed sequence and records the head the server announces, without
// waiting for the entries to be processed.
func (s *Session) Sync(ctx context.Context) error {
	if s.cfg.Handler == nil {
		return nil
	}
	c, err := s.Live(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	after := s.processed
	s.mu.Unlock()
	r, err := c.Call(ctx, "client.Sync", &wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{AfterSeq: after}}})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.head = max(s.head, r.GetSyncOk().GetHead())
	s.mu.Unlock()
	return nil
}

// CatchUp waits like CaughtUp, but a deadline is about progress, not
// total time: it gives up only when no entry was processed for stall. A
// device with a large backlog keeps going as long as entries flow.
func (s *Session) CatchUp(ctx context.Context, stall time.Duration) error {
	return s.waitCaughtUp(ctx, stall)
}

// CaughtUp waits until every mailbox entry the server announced when the
// current connection was set up has been processed.
func (s *Session) CaughtUp(ctx context.Context) error { return s.waitCaughtUp(ctx, 0) }

// waitCaughtUp waits until processed reaches head; with stall > 0 it fails
// when no entry was processed for that long.
func (s *Session) waitCaughtUp(ctx context.Context, stall time.Duration) error {
	var stalled <-chan time.Time
	var t *time.Timer
	if stall > 0 {
		t = time.NewTimer(stall)
		defer t.Stop()
		stalled = t.C
	}
	for {
		s.mu.Lock()
		c, fatal, prog := s.cur, s.fatal, s.progress
		done := c != nil && s.processed >= s.head
		s.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if done {
			return nil
		}
		select {
		case <-prog:
			if t != nil {
				t.Reset(stall) // go1.23+: Reset drains a fired timer
			}
		case <-stalled:
			return fmt.Errorf("client: no mailbox progress for %v while catching up: %w", stall, context.DeadlineExceeded)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Retryable reports whether a failed request is worth sending again: the
// connection was lost, or the server said so.
func Retryable(err error) bool {
	if errors.Is(err, ErrDisconnected) {
		return true
	}
	var we *wire.Error
	return errors.As(err, &we) && wire.Retryable(we.Kind)
}

// RefreshToken trades the refresh token for a new token pair over the live
// connection (waiting for one) and returns the new access token. Scripts
// use it for a freshly issued token (`hearth chat token`).
func (s *Session) RefreshToken(ctx context.Context) (string, error) {
	c, err := s.Live(ctx)
	if err != nil {
		return "", fmt.Errorf("client.Refresh: %w", err)
	}
	access, _, _, err := s.cfg.Tokens.Tokens()
	if err != nil {
		return "", fmt.Errorf("client: read tokens: %w", err)
	}
	return s.refresh(ctx, c, access)
}
