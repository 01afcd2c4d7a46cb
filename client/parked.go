package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Parking: a delivery that cannot be processed yet because a device list
// could not be fetched (its user's server down a moment: a commit's
// removal that the admin rule must check, a member a commit or Welcome
// adds, a sender not on the list this device holds) must not hold the
// whole mailbox (issue 17: no head-of-line blocking across
// conversations). It is parked instead: stored in the profile with its
// conversation's later deliveries behind it (to keep the conversation's
// order), in the same transaction as the mailbox position, so the mailbox
// is acknowledged past it and the other conversations go on at once. The
// parked conversation is retried (retryParked) by every Flush, by Receive
// once caught up (then on a timer while it waits for more) and by a send
// or group operation on it, never more than once a parkRetryMin, and its
// deliveries are applied in order once the list can be fetched. A commit
// still unchecked recheckCommitFor after the hub accepted it is refused as
// before (checkCommit), and healing takes over. While parked, nothing is
// encrypted or committed for the conversation: its epoch may already be
// behind the hub's.

// parkRetryMin and parkRetryMax bound the wait between two retries of a
// parked conversation (doubling from the first).
const (
	parkRetryMin = time.Second
	parkRetryMax = 8 * time.Second
)

// listWait is a delivery's processing failing only because a device list
// could not be fetched: it is parked, not refused.
type listWait struct {
	conv string
	err  error
}

func (w *listWait) Error() string { return w.prefix() + w.err.Error() }

func (w *listWait) prefix() string {
	return fmt.Sprintf("conversation %s waits for a device list: ", w.conv)
}

func (w *listWait) Unwrap() error { return w.err }

// parkRecord is a parked conversation's state.
type parkRecord struct {
	SinceMs int64  `json:"since_ms"`
	NextMs  int64  `json:"next_ms"` // the next retry is due
	LastMs  int64  `json:"last_ms"` // the last try
	Tries   int    `json:"tries"`   // retries that failed
	Reason  string `json:"reason"`  // the last failure, without content
}

const (
	parkedPrefix  = "parked/" // parkedPrefix + conv: its parkRecord
	parkQueuePref = "parkq/"  // parkQueuePref + conv + "/" + seq: a delivery
)

func parkedName(conv string) string { return parkedPrefix + conv }

func parkQueueName(conv string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d", parkQueuePref, conv, seq)
}

// getPark returns conv's park record, if it is parked.
func getPark(tx *store.Tx, conv string) (parkRecord, bool, error) {
	raw := tx.Meta(parkedName(conv))
	if raw == nil {
		return parkRecord{}, false, nil
	}
	var p parkRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return parkRecord{}, false, fmt.Errorf("client: park record of %s: %w", conv, err)
	}
	return p, true, nil
}

func putPark(tx *store.Tx, conv string, p parkRecord) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return tx.PutMeta(parkedName(conv), raw)
}

// isParked reports whether conv has parked deliveries.
func isParked(tx *store.Tx, conv string) bool { return tx.Meta(parkedName(conv)) != nil }

// errParked is wrapped by heldErr.
var errParked = errors.New("parked until the list can be fetched")

// heldErr is the error for a send or commit to a parked conversation:
// retryable, so the outbox backs off and tries again.
func heldErr(conv string) error {
	return wire.E("client.Send", wire.Code_CODE_UNAVAILABLE, errParked,
		fmt.Sprintf("conversation %s waits for a commit or message that cannot be checked yet (a device list could not be fetched)", conv))
}

// held is roster.Config.Held: no commit to a parked conversation.
func held(tx *store.Tx, conv string) error {
	if isParked(tx, conv) {
		return heldErr(conv)
	}
	return nil
}

// park stores d behind conv's parked deliveries, parking conv first if
// it is not (why: the failure that parks it).
func (r *receiver) park(tx *store.Tx, d *wire.Delivery, why error) error {
	conv := d.GetConversationId()
	if !isParked(tx, conv) {
		now := r.now()
		p := parkRecord{SinceMs: now.UnixMilli(), LastMs: now.UnixMilli(), NextMs: now.Add(parkRetryMin).UnixMilli(), Reason: why.Error()}
		if err := putPark(tx, conv, p); err != nil {
			return err
		}
	}
	raw, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	return tx.PutMeta(parkQueueName(conv, d.GetSeq()), raw)
}

// handleAll processes ds in one transaction. A delivery that must wait
// for a device list parks its conversation: the transaction is redone
// from the start with that conversation parked at that delivery (so
// nothing of its failed processing is kept), and so on for each
// conversation that must wait.
func (r *receiver) handleAll(ctx context.Context, ds []*wire.Delivery) error {
	self, err := r.self()
	if err != nil {
		return err
	}
	parking := map[string]error{}
	for {
		var queued bool
		err := r.st.Update(func(tx *store.Tx) error {
			queued = false
			got := map[string]uint64{} // delivery receipts due (receiptDelivered)
			for _, d := range ds {
				if err := r.handle(ctx, tx, self, d, parking, got); err != nil {
					return err
				}
			}
			return r.receiptDelivered(tx, self, got, &queued)
		})
		if err == nil {
			r.receiptsQueued(queued)
		}
		var w *listWait
		if !errors.As(err, &w) || w.conv == "" || parking[w.conv] != nil {
			if err == nil {
				for conv, why := range parking { // logged once the parking is stored
					r.log.Info("a delivery cannot be processed yet; its conversation is parked, the others go on",
						"conversation", conv, "err", why)
				}
			}
			return err
		}
		parking[w.conv] = w.err
	}
}

// retryParked retries the parked conversations whose retry is due, or
// only conv when it is not empty, and returns when the next retry of those
// still parked is due (zero: none parked). With soon, a retry is due once
// parkRetryMin passed since the last (a send waits for the conversation:
// sooner than the backoff, never more than once a parkRetryMin).
func (r *receiver) retryParked(ctx context.Context, conv string, soon bool) (time.Time, error) {
	var parked []parkDue
	err := r.st.Peek(func(tx *store.Tx) (err error) { // metadata only (keyPackages.ensure)
		parked, err = parkedIn(tx, conv)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	return r.retryDue(ctx, parked, soon)
}

// parkDue is a parked conversation and its retry times.
type parkDue struct {
	conv       string
	next, last time.Time
}

// parkedIn lists, reading tx, the parked conversations (only conv when
// it is not empty) for retryDue.
func parkedIn(tx *store.Tx, conv string) ([]parkDue, error) {
	var parked []parkDue
	for _, c := range tx.MetaNames(parkedPrefix) {
		if conv != "" && c != conv {
			continue
		}
		p, _, err := getPark(tx, c)
		if err != nil {
			return nil, err
		}
		parked = append(parked, parkDue{c, time.UnixMilli(p.NextMs), time.UnixMilli(p.LastMs)})
	}
	return parked, nil
}

// retryDue is retryParked for the conversations parkedIn read.
func (r *receiver) retryDue(ctx context.Context, parked []parkDue, soon bool) (time.Time, error) {
	if len(parked) == 0 {
		return time.Time{}, nil
	}
	var next time.Time
	for _, p := range parked {
		now := r.now()
		if !now.Before(p.next) || (soon && now.Sub(p.last) >= parkRetryMin) {
			if err := r.unpark(ctx, p.conv); err != nil {
				return time.Time{}, err
			}
			var rec parkRecord
			var still bool
			if err := r.st.Peek(func(tx *store.Tx) (err error) { rec, still, err = getPark(tx, p.conv); return }); err != nil {
				return time.Time{}, err
			}
			if !still {
				continue
			}
			p.next = time.UnixMilli(rec.NextMs)
		}
		if next.IsZero() || p.next.Before(next) {
			next = p.next
		}
	}
	return next, nil
}

// stopAt ends an unpark pass at the parked delivery index i, which must
// still wait.
type stopAt struct {
	i   int
	why error
}

func (s *stopAt) Error() string { return s.why.Error() }

// unpark applies conv's parked deliveries in order, as far as they can be
// processed now, in one transaction: a delivery that must still wait
// keeps it and those behind it parked, and the transaction is redone to
// apply only those before it. Any other failure leaves everything parked
// and only moves the next retry on, so that nothing spins.
func (r *receiver) unpark(ctx context.Context, conv string) error {
	self, err := r.self()
	if err != nil {
		return err
	}
	ctx = directory.AskAnyway(ctx) // the list it waits for: ask, whatever the memo says
	limit := -1                    // apply only the first limit deliveries (-1: all)
	for {
		var applied int
		var queued bool
		err := r.st.Update(func(tx *store.Tx) error {
			applied, queued = 0, false
			got := map[string]uint64{} // delivery receipts due for what is applied
			p, ok, err := getPark(tx, conv)
			if err != nil || !ok {
				return err // unparked meanwhile (another run on this profile)
			}
			names := tx.MetaNames(parkQueuePref + conv + "/")
			for i, name := range names {
				if i == limit {
					p.Tries++
					p.LastMs, p.NextMs = r.now().UnixMilli(), r.now().Add(parkBackoff(p.Tries)).UnixMilli()
					if err := putPark(tx, conv, p); err != nil {
						return err
					}
					return r.receiptDelivered(tx, self, got, &queued)
				}
				key := parkQueuePref + conv + "/" + name
				d := new(wire.Delivery)
				if err := proto.Unmarshal(tx.Meta(key), d); err != nil {
					// The profile's own record, damaged: counted, never silently dropped.
					r.log.Warn("a parked delivery does not decode; counted as undecryptable", "conversation", conv, "key", name, "err", err)
					if err := convstate.AddUndecryptable(tx, conv, "a parked delivery was damaged in the profile"); err != nil {
						return err
					}
				} else if err := r.process(ctx, tx, self, d, got); err != nil {
					var w *listWait
					if errors.As(err, &w) {
						return &stopAt{i: i, why: err}
					}
					return err
				}
				if err := tx.DeleteMeta(key); err != nil {
					return err
				}
				applied++
			}
			if err := tx.DeleteMeta(parkedName(conv)); err != nil {
				return err
			}
			return r.receiptDelivered(tx, self, got, &queued)
		})
		var st *stopAt
		switch {
		case err == nil:
			r.receiptsQueued(queued)
			if limit < 0 {
				r.log.Info("parked conversation applied", "conversation", conv, "deliveries", applied)
			}
			return nil
		case errors.As(err, &st) && st.i > 0:
			limit = st.i
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Nothing could be applied: the first parked delivery still waits
		// (or failed otherwise). Try again later.
		r.log.Debug("parked conversation still waits", "conversation", conv, "err", err)
		return r.st.Update(func(tx *store.Tx) error {
			p, ok, gerr := getPark(tx, conv)
			if gerr != nil || !ok {
				return gerr
			}
			p.Tries++
			p.LastMs, p.NextMs = r.now().UnixMilli(), r.now().Add(parkBackoff(p.Tries)).UnixMilli()
			p.Reason = err.Error()
			return putPark(tx, conv, p)
		})
	}
}

// parkBackoff is the wait before retry tries+1 of a parked conversation.
func parkBackoff(tries int) time.Duration {
	d := parkRetryMin
	for i := 1; i < tries && d < parkRetryMax; i++ {
		d *= 2
	}
	return min(d, parkRetryMax)
}

// waitParked is for a send or commit to conv: when conv is parked, it is
// retried (at most once a parkRetryMin), and if it must still wait the
// error says so (retryable: the outbox backs off and tries again within
// the send's timeout).
func (r *receiver) waitParked(ctx context.Context, conv string) error {
	var parked bool
	r.st.Peek(func(tx *store.Tx) error { parked = isParked(tx, conv); return nil })
	if !parked {
		return nil
	}
	if _, err := r.retryParked(ctx, conv, true); err != nil {
		return err
	}
	r.st.Peek(func(tx *store.Tx) error { parked = isParked(tx, conv); return nil })
	if parked {
		return heldErr(conv)
	}
	return nil
}

// inStep is Groups.inStep: a group operation commits, and must not commit
// on an epoch the hub has left, so a parked group is waited for (retried
// once a parkRetryMin, until ctx ends), then healed if it is out of step
// or if its stored state does not load.
func (c *Client) inStep(ctx context.Context, conv string) error {
	for {
		err := c.recv.waitParked(ctx, conv)
		if err == nil {
			break
		}
		var parked bool
		c.st.View(func(tx *store.Tx) error { parked = isParked(tx, conv); return nil })
		if !parked {
			return err
		}
		t := time.NewTimer(parkRetryMin)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
	if err := c.heal.prepare(ctx, conv); err != nil {
		return err
	}
	return c.heal.healDamaged(ctx, conv, c.heal.loads(ctx, conv))
}

// ParkedConversation is a conversation whose deliveries wait for a device
// list that could not be fetched (see parking above): they are held in
// the profile, not lost, and applied once the list can be fetched.
type ParkedConversation struct {
	Conversation string
	Since        time.Time // parked since
	Held         int       // deliveries held
	Tries        int       // retries that failed
	NextTry      time.Time
	Reason       string // the last failure, without content
}

// ParkedConversations lists the parked conversations, oldest first.
func (c *Client) ParkedConversations() ([]ParkedConversation, error) {
	var out []ParkedConversation
	err := c.st.View(func(tx *store.Tx) error {
		for _, conv := range tx.MetaNames(parkedPrefix) {
			p, ok, err := getPark(tx, conv)
			if err != nil || !ok {
				return err
			}
			out = append(out, ParkedConversation{Conversation: conv, Since: time.UnixMilli(p.SinceMs), Tries: p.Tries,
				NextTry: time.UnixMilli(p.NextMs), Reason: strings.TrimPrefix(p.Reason, (&listWait{conv: conv}).prefix()), Held: len(tx.MetaNames(parkQueuePref + conv + "/"))})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b ParkedConversation) int { return a.Since.Compare(b.Since) })
	return out, err
}
