package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// ErrNotDelivered is wrapped when a message's sending failed for good; the
// item stays in the outbox marked failed, with the reason.
var ErrNotDelivered = errors.New("client: message refused by the server")

// maxInFlight is how many outbox items (of as many conversations) Flush
// keeps in flight on one connection (the server queues up to 128 Sends per
// session).
const maxInFlight = 32

// Config is what a Sender needs from the client.
type Config struct {
	Store *store.Store
	Log   *slog.Logger
	// Seal encrypts an item that has no payload yet and stores the Send
	// request with the advanced group state; it returns the sealed item.
	Seal func(ctx context.Context, it store.OutboxItem) (store.OutboxItem, error)
	// Resolve names the known conversation of a user or conversation id.
	Resolve func(tx *store.Tx, to string) (conv string, ok bool)
	// ControlSent records an accepted control item (instead of history).
	ControlSent func(it store.OutboxItem) error
	// StaleEpoch is told a conversation whose hub refused a message as
	// encrypted for an epoch it has left.
	StaleEpoch func(conv string)
	// User is this device's user, the sender of what goes to history.
	User func() (string, error)
}

// Sender sends the outbox.
type Sender struct {
	cfg Config

	mu        sync.Mutex
	maxFlight int // the most Sends one window had in flight
}

// New returns a Sender.
func New(cfg Config) *Sender { return &Sender{cfg: cfg} }

// MaxInFlight returns the most Sends one window had in flight.
func (o *Sender) MaxInFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.maxFlight
}

// Flush sends every queued message, over s, in order until the outbox is empty or
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
func (o *Sender) Flush(ctx context.Context, s *session.Session, until string) error {
	attempt, resync, synced, window, scan := 0, false, false, 1, 2
	for {
		if resync {
			if err := s.Resync(ctx); err != nil {
				if ctx.Err() != nil || !session.Retryable(err) {
					return err
				}
				continue
			}
			resync, synced = false, true
		}
		if err := s.CaughtUp(ctx); err != nil {
			return err
		}
		items, err := o.nextWindow(window, scan)
		if err != nil || len(items) == 0 {
			return err
		}
		scan = min(2*len(items)+2, 2*maxInFlight)
		if !synced && slices.ContainsFunc(items, o.firstContact) {
			// A first message to a user: a Welcome to an existing
			// conversation with them may be on its way (another device of
			// this user added this one); take it before creating one.
			resync = true
			continue
		}
		var retry error
		for i, err := range o.sendWindow(ctx, s, items) {
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
			case !session.Retryable(err):
				if ferr := o.failItem(it, err); ferr != nil {
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
		o.cfg.Log.Debug("send failed, retrying", "err", retry)
		resync = wire.Is(retry, wire.Code_CODE_STALE_EPOCH)
		wait := s.Backoff(attempt)
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
func (o *Sender) firstContact(it store.OutboxItem) bool {
	if it.Conversation != "" {
		return false
	}
	known := false
	o.cfg.Store.View(func(tx *store.Tx) error { _, known = o.cfg.Resolve(tx, it.To); return nil })
	return !known
}

// nextWindow picks up to max items to send together: the oldest unsent
// item of each conversation among the first scan items not marked failed,
// in outbox order. At most one item per conversation is ever in flight,
// so a retryable refusal (a rate limit) cannot let a later message of the
// same conversation reach the hub first; different conversations go
// together.
func (o *Sender) nextWindow(max, scan int) ([]store.OutboxItem, error) {
	var out []store.OutboxItem
	err := o.cfg.Store.View(func(tx *store.Tx) error {
		items, err := tx.PendingOutbox(scan)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, it := range items {
			key := it.Conversation
			if key == "" {
				if conv, ok := o.cfg.Resolve(tx, it.To); ok {
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
func (o *Sender) sendWindow(ctx context.Context, s *session.Session, items []store.OutboxItem) []error {
	var fl []flight
	var stop error
	for _, it := range items {
		if it.Payload == nil {
			if it, stop = o.cfg.Seal(ctx, it); stop != nil {
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
	cn, err := s.Live(ctx)
	for i := range fl {
		if err == nil {
			fl[i].wait, err = cn.Start("client.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: fl[i].req}})
		}
		if err != nil {
			e := err
			fl[i].wait = func(context.Context) (*wire.ServerFrame, error) { return nil, e }
		}
	}
	o.noteFlight(len(fl))
	res := o.settle(ctx, fl)
	if stop != nil {
		res = append(res, stop)
	}
	return res
}

// settle waits for each flight's answer and records the accepted ones.
func (o *Sender) settle(ctx context.Context, fl []flight) []error {
	res := make([]error, len(fl))
	oks := make([]*wire.SendOK, len(fl))
	for i, f := range fl {
		r, err := f.wait(ctx)
		switch {
		case wire.Is(err, wire.Code_CODE_STALE_EPOCH):
			// Encrypted for an epoch the hub has left: catch up, then
			// re-encrypt under the same id (the hub never accepted it).
			o.cfg.StaleEpoch(f.req.GetConversationId())
			res[i] = o.unseal(f.it, err)
		case err != nil:
			res[i] = err
		case r.GetSendOk().GetMessageId() != f.req.GetMessageId():
			res[i] = fmt.Errorf("client.Send: answer for message %q, sent %q: %w", r.GetSendOk().GetMessageId(), f.req.GetMessageId(), session.ErrDisconnected)
		default:
			oks[i] = r.GetSendOk()
		}
	}
	user, uerr := o.cfg.User()
	var texts []int
	for i, f := range fl {
		switch {
		case oks[i] == nil:
		case uerr != nil:
			res[i] = uerr
		case f.it.Control != nil:
			res[i] = o.cfg.ControlSent(f.it)
		default:
			texts = append(texts, i)
		}
	}
	if len(texts) == 0 {
		return res
	}
	err := o.cfg.Store.Update(func(tx *store.Tx) error {
		for _, i := range texts {
			ok, f := oks[i], fl[i]
			m := store.Message{ID: f.it.ID, Conversation: f.req.GetConversationId(), From: user, Text: f.it.Text, Media: f.it.Media,
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
func (o *Sender) noteFlight(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.maxFlight = max(o.maxFlight, n)
}

// failItem marks an item failed for good, with the reason.
func (o *Sender) failItem(it store.OutboxItem, reason error) error {
	o.cfg.Log.Warn("message not delivered", "id", it.ID, "err", reason)
	return o.cfg.Store.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // finished by another run meanwhile
		} else if err != nil {
			return err
		}
		cur.Failed = reason.Error()
		return tx.UpdateOutbox(cur)
	})
}

// unseal drops an item's ciphertext so that it is encrypted again; the
// returned error is retryable so Flush catches up before the next try.
func (o *Sender) unseal(it store.OutboxItem, cause error) error {
	err := o.cfg.Store.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if err != nil {
			return err
		}
		cur.Payload, cur.Epoch = nil, 0
		return tx.UpdateOutbox(cur)
	})
	if err != nil {
		return err
	}
	return cause
}
