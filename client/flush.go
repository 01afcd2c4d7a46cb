package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/store"
	"hearth/homeserver/wire"
)

// maxInFlight is how many outbox items (of as many conversations) Flush
// keeps in flight on one connection (the server queues up to 128 Sends per
// session).
const maxInFlight = 32

// Flush sends every queued message in order until the outbox is empty or
// until the message with id until (if not empty) was accepted. Each message
// keeps its id on every retry, so a retry after a lost answer is
// deduplicated by the server. It returns ctx's error if it runs out of time.
//
// Up to maxInFlight items, of different conversations (the oldest unsent
// of each), are encrypted, then sent back to back on one connection before
// their answers are awaited; each answer is matched to its item by the
// message id. A conversation has one message in flight at a time, so its
// order is kept whatever the server refuses. The window starts at one item
// and doubles after each window sent without a retryable refusal (slow
// start); a refusal (rate limit, stale epoch, lost connection) sets it
// back to one.
//
// Flush does not Sync first: the session's pushes keep this device's
// groups current, and it waits only until everything the server announced
// is processed (CaughtUp). It asks the server for its mailbox head again
// (Resync) and processes everything up to it only before a first message
// to a user (a Welcome may be on its way) and after a stale-epoch refusal.
func (c *Client) Flush(ctx context.Context, until string) error {
	if c.cfg.Groups == nil {
		return fmt.Errorf("client.Flush: %w", ErrNoE2EE)
	}
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if err := c.ensureKeyPackages(ctx); err != nil {
		return err
	}
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	if ctx.Value(leavesKey{}) == nil {
		if err := c.commitLeaves(context.WithValue(ctx, leavesKey{}, true)); err != nil {
			c.log.Warn("committing leave requests", "err", err)
		}
	}
	attempt, resync, synced, window, scan := 0, false, false, 1, 2
	for {
		if resync {
			if err := s.Resync(ctx); err != nil {
				if ctx.Err() != nil || !Retryable(err) {
					return err
				}
				continue
			}
			resync, synced = false, true
		}
		if err := s.CaughtUp(ctx); err != nil {
			return err
		}
		items, err := c.nextWindow(window, scan)
		if err != nil || len(items) == 0 {
			return err
		}
		scan = min(2*len(items)+2, 2*maxInFlight)
		if !synced && slices.ContainsFunc(items, c.firstContact) {
			// A first message to a user: a Welcome to an existing
			// conversation with them may be on its way (another device of
			// this user added this one); take it before creating one.
			resync = true
			continue
		}
		var retry error
		for i, err := range c.sendWindow(ctx, s, items) {
			it := items[i]
			if errors.Is(err, store.ErrNotFound) {
				err = nil // another run on this profile sent it meanwhile
			}
			switch {
			case err == nil:
				if it.ID == until {
					return nil
				}
			case ctx.Err() != nil:
				return ctx.Err()
			case !Retryable(err):
				if ferr := c.failItem(it, err); ferr != nil {
					return ferr
				}
				if it.ID == until {
					return fmt.Errorf("%w: %w", ErrNotDelivered, err)
				}
			case retry == nil:
				retry = err
			}
		}
		if retry == nil {
			attempt, window = 0, min(2*window, maxInFlight) // slow start
			continue
		}
		window = 1
		c.log.Debug("send failed, retrying", "err", retry)
		resync = wire.Is(retry, wire.Code_CODE_STALE_EPOCH)
		wait := s.backoff(attempt)
		var we *wire.Error
		if errors.As(retry, &we) && we.RetryAfter > 0 { // rate limited: the server says when
			wait = max(wait, time.Duration(we.RetryAfter)*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		attempt++
	}
}

// firstContact reports whether it is a message to a user this device has
// no conversation with yet.
func (c *Client) firstContact(it store.OutboxItem) bool {
	if it.Conversation != "" {
		return false
	}
	known := false
	c.st.View(func(tx *store.Tx) error { _, known = conversationFor(tx, it.To); return nil })
	return !known
}

// leavesKey marks a Flush made while committing leave requests.
type leavesKey struct{}

// nextWindow picks up to max items to send together: the oldest unsent
// item of each conversation among the first scan items not marked failed,
// in outbox order. At most one item per conversation is ever in flight,
// so a retryable refusal (a rate limit) cannot let a later message of the
// same conversation reach the hub first; different conversations go
// together.
func (c *Client) nextWindow(max, scan int) ([]store.OutboxItem, error) {
	var out []store.OutboxItem
	err := c.st.View(func(tx *store.Tx) error {
		items, err := tx.PendingOutbox(scan)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, it := range items {
			key := it.Conversation
			if key == "" {
				if conv, ok := conversationFor(tx, it.To); ok {
					key = conv
				} else {
					key = "to/" + it.To
				}
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			if out = append(out, it); len(out) == max {
				break
			}
		}
		return nil
	})
	return out, err
}

// flight is one Send on the wire.
type flight struct {
	it   store.OutboxItem
	req  *wire.Send
	wait func(context.Context) (*wire.ServerFrame, error)
}

// sendWindow encrypts the items that are not yet (each committing the
// advanced group state with its ciphertext), then sends them back to back
// on one connection, collects the answers and moves the accepted messages
// to history in one transaction. It returns one result per item it got to,
// in order: it stops at the first item that could not be encrypted.
func (c *Client) sendWindow(ctx context.Context, s *Session, items []store.OutboxItem) []error {
	var fl []flight
	var stop error
	for _, it := range items {
		if it.Payload == nil {
			if it, stop = c.seal(ctx, it); stop != nil {
				break
			}
		}
		req := new(wire.Send)
		if err := proto.Unmarshal(it.Payload, req); err != nil {
			stop = fmt.Errorf("client: outbox item %s: %w", it.ID, err)
			break
		}
		fl = append(fl, flight{it: it, req: req})
	}
	// Written back to back once all are encrypted.
	cn, err := s.live(ctx)
	for i := range fl {
		if err == nil {
			fl[i].wait, err = cn.start("client.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: fl[i].req}})
		}
		if err != nil {
			e := err
			fl[i].wait = func(context.Context) (*wire.ServerFrame, error) { return nil, e }
		}
	}
	c.noteFlight(len(fl))
	res := c.settle(ctx, fl)
	if stop != nil {
		res = append(res, stop)
	}
	return res
}

// settle waits for each flight's answer and records the accepted ones.
func (c *Client) settle(ctx context.Context, fl []flight) []error {
	res := make([]error, len(fl))
	oks := make([]*wire.SendOK, len(fl))
	for i, f := range fl {
		r, err := f.wait(ctx)
		switch {
		case wire.Is(err, wire.Code_CODE_STALE_EPOCH):
			// Encrypted for an epoch the hub has left: catch up, then
			// re-encrypt under the same id (the hub never accepted it).
			c.unsync(f.req.GetConversationId())
			res[i] = c.unseal(f.it, err)
		case err != nil:
			res[i] = err
		case r.GetSendOk().GetMessageId() != f.req.GetMessageId():
			res[i] = fmt.Errorf("client.Send: answer for message %q, sent %q: %w", r.GetSendOk().GetMessageId(), f.req.GetMessageId(), ErrDisconnected)
		default:
			oks[i] = r.GetSendOk()
		}
	}
	a, aerr := c.Account()
	var texts []int
	for i, f := range fl {
		switch {
		case oks[i] == nil:
		case aerr != nil:
			res[i] = aerr
		case f.it.Control != nil:
			res[i] = c.controlSent(f.it)
		default:
			texts = append(texts, i)
		}
	}
	if len(texts) == 0 {
		return res
	}
	err := c.st.Update(func(tx *store.Tx) error {
		for _, i := range texts {
			ok, f := oks[i], fl[i]
			m := store.Message{ID: f.it.ID, Conversation: f.req.GetConversationId(), From: a.User, Text: f.it.Text, Media: f.it.Media,
				SentAt: time.UnixMilli(ok.GetServerTimeMs()).UTC(), Seq: ok.GetConversationSeq()}
			if _, err := tx.AddHistory(m); err != nil {
				return err
			}
			if err := tx.DeleteOutbox(f.it.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err // (not found: another run on this profile finished it)
			}
		}
		return nil
	})
	for _, i := range texts {
		res[i] = err
	}
	return res
}

// noteFlight records the largest window sent (tests, benchmarks).
func (c *Client) noteFlight(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxFlight = max(c.maxFlight, n)
}
