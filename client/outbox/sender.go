package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// ErrSendLater is wrapped when a receipt or settings item could not be
// encrypted for a reason that may pass (its conversation out of step, a
// roster check that failed): the item stays in the outbox and every later
// Flush tries it again.
var ErrSendLater = errors.New("client: not sent now; kept in the outbox and tried again by the next flush")

// maxInFlight is how many outbox items (of as many conversations) Flush
// keeps in flight on one connection (the server queues up to 128 Sends per
// session).
const maxInFlight = 32

// passTries is how many times one Flush tries a queue whose item fails
// retryably (a server that cannot be reached, a device list that cannot be
// fetched) before it leaves it for a later Flush; the queue of the item
// Flush waits for is tried until its context ends.
const passTries = 3

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
	// Refused turns the refusal for good of it into the reason kept and
	// returned (nil: err as it is).
	Refused func(it store.OutboxItem, err error) error
	// Gone reports whether a receipt or settings item that could not be
	// encrypted (err, not retryable) can never be sent from this device:
	// it left the conversation, holds no state of it, gave up rejoining
	// it, or may send nothing at all any more. Such an item is dropped;
	// any other is kept (failed until the next Flush). Nil: none is gone.
	Gone func(it store.OutboxItem, err error) bool
	// Hold reports until when an item waits before it is sent (a receipt
	// in its coalescing window); the zero time: it does not wait. A Flush
	// leaves such an item where it is, does not wait for it, and sends the
	// items behind it in other send queues; FlushHeld, or a Flush waiting
	// for it (until), sends every held item at once. Nil: none waits.
	Hold func(it store.OutboxItem) time.Time
	// Now is the clock of the backoffs (time.Now when nil).
	Now func() time.Time
}

// Sender sends the outbox.
type Sender struct {
	cfg Config

	mu        sync.Mutex
	maxFlight int                // the most Sends in flight at once
	backoff   map[string]backoff // per send queue, kept across Flushes
	launches  int                // items started (tests: no busy loop)
	// settling holds the items accepted by the server whose removal from
	// the outbox (and entry in history) is put off to the store's next
	// write (settle): Flush reads past them.
	settling map[string]bool
}

// backoff is a queue's wait after a retryable failure.
type backoff struct {
	attempt int
	until   time.Time
}

// New returns a Sender.
func New(cfg Config) *Sender {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg, backoff: map[string]backoff{}, settling: map[string]bool{}}
}

// MaxInFlight returns the most Sends that were in flight at once.
func (o *Sender) MaxInFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.maxFlight
}

// Launches returns how many times an item was started (sealed if needed
// and sent): tests check that a stuck item is not spun on.
func (o *Sender) Launches() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.launches
}

// Flush sends the outbox over s until the message with id until (if not
// empty) was accepted or failed, or, with until empty, until no queue has
// anything left to send now. It returns ctx's error if it runs out of
// time; a failed until is returned wrapping ErrNotDelivered.
//
// The outbox is one queue per conversation (direct conversations not known
// yet: per user). Each queue has at most one item in flight, its oldest
// not marked failed, so a conversation's order is kept whatever the server
// refuses; the heads of up to maxInFlight queues are sealed and sent at
// once, each on its own, so a slow or stuck queue never holds back
// another. A queue whose item fails retryably backs off (exponentially, or
// as long as a rate limit says) while the others go on; the item records
// the attempt and its reason. An item refused for good (unknown user or
// domain, not a member, refused by policy) is marked failed, kept for the
// user to see, retry or drop, and the queue goes on with the next item: a
// failed message is sent, when retried, after those queued behind it.
// Each message keeps its id on every retry, so a retry after a lost answer
// is deduplicated by the server.
//
// Before sealing, an item waits until the session processed everything
// the server announced (CaughtUp), so that a removal or a new epoch is
// known; the mailbox head is asked for again (Resync) before a first
// message to a user (a Welcome may be on its way) and after a stale-epoch
// refusal.
//
// Items that Config.Hold holds are left for a later Flush, unless until
// is one of them: then every held item goes, as with FlushHeld.
func (o *Sender) Flush(ctx context.Context, s *session.Session, until string) error {
	return o.flush(ctx, s, until, false, nil)
}

// FlushHeld is Flush (with until empty) that also sends the items
// Config.Hold holds: a receiver that stops sends its receipts at once.
// With only set, it sends only the items only accepts.
func (o *Sender) FlushHeld(ctx context.Context, s *session.Session, only func(store.OutboxItem) bool) error {
	return o.flush(ctx, s, "", true, only)
}

func (o *Sender) flush(ctx context.Context, s *session.Session, until string, release bool, only func(store.OutboxItem) bool) error {
	fctx, cancel := context.WithCancel(ctx)
	f := &flush{o: o, s: s, until: until, release: release, only: only, ctx: fctx, results: make(chan *result, maxInFlight),
		inflight: map[string]bool{}, tries: map[string]int{}, bodies: true}
	err := f.run(ctx)
	cancel()
	f.drain()
	return err
}

// flush is one Flush call.
type flush struct {
	o       *Sender
	s       *session.Session
	until   string
	release bool                        // held items go too (Config.Hold)
	bodies  bool                        // the failed receipts and settings are not retried yet (retryBodies)
	only    func(store.OutboxItem) bool // if set, the items to send (the others stay)
	ctx     context.Context             // ended when Flush returns
	results chan *result                // by pointer: a buffer of maxInFlight results would be ~11 KB per Flush

	inflight map[string]bool // queues (and store queues) with an item in flight
	finished bool            // until was accepted or failed
	err      error           // until's failure
	tries    map[string]int  // retryable failures per queue in this Flush
	n        int             // items in flight, at most maxInFlight

	resyncMu sync.Mutex // held while resyncing
	flagMu   sync.Mutex // guards synced and stale
	synced   bool       // resynced in this Flush
	stale    bool       // a stale-epoch refusal: resync before sealing
}

// result is the outcome of one item's try.
type result struct {
	queue   string
	it      store.OutboxItem
	req     *wire.Send
	ok      *wire.SendOK
	err     error
	refused bool // err is the server's answer to the Send
}

// run is Flush's loop: start the heads of the queues that are ready, then
// wait for a result, the end of a backoff or the end of ctx.
func (f *flush) run(ctx context.Context) error {
	for {
		done, derr, next, err := f.launch()
		if err != nil || done {
			return errors.Join(derr, err)
		}
		if f.n == 0 && next.IsZero() {
			return nil // nothing left to send now
		}
		if err := f.wait(ctx, next); err != nil {
			return err
		}
		if f.finished {
			return f.err
		}
	}
}

// wait waits for a result (and collects it), for next (if not zero) or for
// the end of ctx.
func (f *flush) wait(ctx context.Context, next time.Time) error {
	var timer <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(next.Sub(f.o.cfg.Now()))
		defer t.Stop()
		timer = t.C
	}
	select {
	case r := <-f.results:
		return f.collect(*r)
	case <-timer:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// launch starts the head of every queue that is ready (the awaited one
// first), up to maxInFlight in all.
// It reports whether until is finished (and its error), and the earliest
// end of a backoff this Flush waits for (zero: none).
func (f *flush) launch() (done bool, derr error, next time.Time, err error) {
	o := f.o
	var heads []store.OutboxItem
	var keys []string
	untilKey := ""
	settling := o.settled()
	var failed []string // receipts and settings a previous Flush kept (first launch only)
	// A Peek: the items whose settling is put off are skipped here (they
	// never failed, so retryBodies does not miss them either).
	err = o.cfg.Store.Peek(func(tx *store.Tx) error {
		if f.bodies {
			var err error
			if failed, err = failedBodiesIn(tx); err != nil {
				return err
			}
		}
		if f.until != "" {
			it, err := tx.OutboxItem(f.until)
			switch {
			case errors.Is(err, store.ErrNotFound) || (err == nil && settling[f.until]):
				done = true // sent (by another run on this profile) or dropped
				return nil
			case err != nil:
				return err
			case it.Failed != "" && it.Body != nil: // kept by another Flush meanwhile
				done, derr = true, fmt.Errorf("%w: %s", ErrSendLater, it.Failed)
				return nil
			case it.Failed != "":
				done, derr = true, fmt.Errorf("%w: %s", ErrNotDelivered, it.Failed)
				return nil
			}
			untilKey = o.key(tx, it)
			if o.held(it, o.cfg.Now()) {
				f.release = true // waiting for a held item: send them all
			}
		}
		all, err := tx.OutboxHeadsSkipping(func(id string) bool { return settling[id] })
		if err != nil {
			return err
		}
		slices.SortFunc(all, func(a, b store.OutboxItem) int { return cmp.Compare(a.Seq, b.Seq) })
		seen := map[string]bool{}
		now := o.cfg.Now()
		for _, it := range all {
			if !f.release && o.held(it, now) {
				continue // its window is still open; the rest of its conversation goes
			}
			if f.only != nil && !f.only(it) {
				continue
			}
			// A user's queue and the conversation it created are one.
			if k := o.key(tx, it); !seen[k] {
				seen[k] = true
				heads, keys = append(heads, it), append(keys, k)
			}
		}
		return nil
	})
	if err == nil && f.bodies {
		f.bodies = false
		if len(failed) > 0 {
			if err := o.retryBodies(failed); err != nil {
				return false, nil, next, err
			}
			if !done {
				return f.launch() // they are queue heads again
			}
		}
	}
	if err != nil || done {
		return done, derr, next, err
	}
	if i := slices.Index(keys, untilKey); i > 0 { // the awaited queue first
		heads = append(append([]store.OutboxItem{heads[i]}, heads[:i]...), heads[i+1:]...)
		keys = append(append([]string{keys[i]}, keys[:i]...), keys[i+1:]...)
	}
	now := o.cfg.Now()
	var started []func() // the tries launched, each sending its result
	o.mu.Lock()
	for i, it := range heads {
		k := keys[i]
		if f.inflight[k] || f.inflight[it.SendQueue()] {
			continue
		}
		if k != untilKey && f.tries[k] >= passTries {
			continue // left for a later Flush
		}
		if b, ok := o.backoff[k]; ok && now.Before(b.until) {
			if next.IsZero() || b.until.Before(next) {
				next = b.until
			}
			continue
		}
		if f.n >= maxInFlight {
			break
		}
		f.inflight[k], f.inflight[it.SendQueue()] = true, true
		o.launches++
		f.n++
		o.maxFlight = max(o.maxFlight, f.n)
		started = append(started, func() { r := f.try(k, it); f.results <- &r })
	}
	o.mu.Unlock()
	if len(started) == 1 && f.n == 1 && next.IsZero() {
		// The only item in flight and no backoff to wake for: until its
		// result, wait would wake for nothing else (the try ends with
		// ctx too), so it runs here, without a goroutine and the
		// hand-offs to and from it (one per message of a sender that
		// sends one at a time).
		started[0]()
		return false, nil, next, nil
	}
	for _, try := range started {
		go try()
	}
	return false, nil, next, nil
}

// Settling returns a test for the items accepted by the server whose
// settling (removal from the outbox) is put off to the store's next
// write: a reader that Peeks at the outbox reads past them, as Flush
// does. It holds the items settling when it was called.
func (o *Sender) Settling() func(id string) bool {
	s := o.settled()
	return func(id string) bool { return s[id] }
}

// settled returns a copy of the items whose settling is put off.
func (o *Sender) settled() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.settling) == 0 {
		return nil
	}
	return maps.Clone(o.settling)
}

// settleLater puts off write, the settling of the accepted item id, to the
// store's next write (Store.Later): lost in a crash, the item is sent again
// under its id, the server answers as the first time, and it is settled
// then. Until it is written, Flush reads past the item.
func (o *Sender) settleLater(id string, write func(*store.Tx) error) {
	o.mu.Lock()
	o.settling[id] = true
	o.mu.Unlock()
	o.cfg.Store.Later("outbox-sent/"+id, write, func() {
		o.mu.Lock()
		delete(o.settling, id)
		o.mu.Unlock()
	})
}

// held reports whether it waits at now (Config.Hold).
func (o *Sender) held(it store.OutboxItem, now time.Time) bool {
	if o.cfg.Hold == nil {
		return false
	}
	until := o.cfg.Hold(it)
	return !until.IsZero() && now.Before(until)
}

// key is the send queue an item belongs to: its conversation, or the one
// its user has by now, or the user's.
func (o *Sender) key(tx *store.Tx, it store.OutboxItem) string {
	if it.Conversation != "" {
		return it.Conversation
	}
	if conv, ok := o.cfg.Resolve(tx, it.To); ok {
		return conv
	}
	return "to/" + it.To
}

// try seals it if it is not yet (each committing the advanced group state
// with its ciphertext), sends it and waits for the answer.
func (f *flush) try(key string, it store.OutboxItem) result {
	r := result{queue: key, it: it}
	if err := f.prepare(it); err != nil {
		r.err = err
		return r
	}
	if it.Payload == nil {
		if it, r.err = f.o.cfg.Seal(f.ctx, it); r.err != nil {
			return r
		}
		r.it = it
	}
	r.req = new(wire.Send)
	if err := proto.Unmarshal(it.Payload, r.req); err != nil {
		r.err = fmt.Errorf("client: outbox item %s: %w", it.ID, err)
		return r
	}
	cn, err := f.s.Live(f.ctx)
	if err != nil {
		r.err = err
		return r
	}
	wait, err := cn.Start(f.ctx, "client.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: r.req}})
	if err != nil {
		r.err = err
		return r
	}
	ans, err := wait(f.ctx)
	r.refused = err != nil && !errors.Is(err, session.ErrDisconnected)
	switch {
	case wire.Is(err, wire.Code_CODE_STALE_EPOCH):
		// Encrypted for an epoch the hub has left: catch up, then
		// re-encrypt under the same id (the hub never accepted it).
		f.o.cfg.StaleEpoch(r.req.GetConversationId())
		r.err = f.o.unseal(it, err)
	case err != nil:
		r.err = err
	case ans.GetSendOk().GetMessageId() != r.req.GetMessageId():
		r.err = fmt.Errorf("client.Send: answer for message %q, sent %q: %w", ans.GetSendOk().GetMessageId(), r.req.GetMessageId(), session.ErrDisconnected)
	default:
		r.ok = ans.GetSendOk()
	}
	return r
}

// prepare resyncs when needed (a first message to a user, a stale epoch)
// and waits until the session processed what the server announced. Items
// that need no resync never wait for one.
func (f *flush) prepare(it store.OutboxItem) error {
	first := f.o.firstContact(it)
	need := func() bool {
		f.flagMu.Lock()
		defer f.flagMu.Unlock()
		return f.stale || (first && !f.synced)
	}
	if need() {
		f.resyncMu.Lock()
		if need() {
			if err := f.s.Resync(f.ctx); err != nil {
				f.resyncMu.Unlock()
				return err
			}
			f.flagMu.Lock()
			f.synced, f.stale = true, false
			f.flagMu.Unlock()
		}
		f.resyncMu.Unlock()
	}
	return f.s.CaughtUp(f.ctx)
}

// firstContact reports whether it is a message to a user this device has
// no conversation with yet.
func (o *Sender) firstContact(it store.OutboxItem) bool {
	if it.Conversation != "" {
		return false
	}
	known := false
	o.cfg.Store.Peek(func(tx *store.Tx) error { _, known = o.cfg.Resolve(tx, it.To); return nil })
	return !known
}

// collect takes r and every other result already there and records them;
// it notes when until is finished (f.finished, f.err).
func (f *flush) collect(r result) error {
	rs := []result{r}
	for more := true; more; {
		select {
		case r := <-f.results:
			rs = append(rs, *r)
		default:
			more = false
		}
	}
	f.landed(rs)
	f.o.settle(rs)
	for _, r := range rs {
		done, err := f.outcome(r)
		if done && !f.finished {
			f.finished, f.err = true, err
		}
	}
	return nil
}

// landed frees the queues of results.
func (f *flush) landed(rs []result) {
	for _, r := range rs {
		delete(f.inflight, r.queue)
		delete(f.inflight, r.it.SendQueue())
		f.n--
	}
}

// drain waits for the items still in flight when Flush returns (their
// context has ended, so they end soon) and records the ones accepted.
func (f *flush) drain() {
	var rs []result
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for f.n > 0 {
		select {
		case r := <-f.results:
			f.landed([]result{*r})
			rs = append(rs, *r)
		case <-t.C:
			f.o.cfg.Log.Warn("outbox: items still in flight after Flush", "n", f.n)
			f.o.settle(rs)
			return
		}
	}
	f.o.settle(rs)
}

// outcome handles one settled result: the queue's backoff, a failed
// item's mark, the window. It reports whether until is finished.
func (f *flush) outcome(r result) (done bool, err error) {
	o := f.o
	rerr := r.err
	if errors.Is(rerr, store.ErrNotFound) && o.gone(r.it.ID) {
		rerr = nil // sent by another run on this profile, or dropped
	}
	switch {
	case rerr == nil:
		o.mu.Lock()
		delete(o.backoff, r.queue)
		o.mu.Unlock()
		return r.it.ID == f.until, nil
	case f.ctx.Err() != nil:
		return false, nil // cut off by the end of Flush: try again later
	case !session.Retryable(rerr):
		if o.cfg.Refused != nil {
			rerr = o.cfg.Refused(r.it, rerr)
		}
		kept, ferr := o.failItem(r, rerr)
		if ferr != nil {
			return true, ferr
		}
		switch {
		case r.it.ID != f.until:
			return false, nil
		case kept:
			return true, fmt.Errorf("%w: %w", ErrSendLater, rerr)
		}
		return true, fmt.Errorf("%w: %w", ErrNotDelivered, rerr)
	}
	o.cfg.Log.Debug("send failed, retrying", "id", r.it.ID, "queue", r.queue, "err", rerr)
	wait := f.s.Backoff(0)
	switch {
	case wire.Is(rerr, wire.Code_CODE_RATE_LIMITED):
		var we *wire.Error
		if errors.As(rerr, &we) && we.RetryAfter > 0 { // the server says when
			wait = max(wait, time.Duration(we.RetryAfter)*time.Millisecond)
		}
	case wire.Is(rerr, wire.Code_CODE_STALE_EPOCH):
		f.flagMu.Lock()
		f.stale = true
		f.flagMu.Unlock()
	case errors.Is(rerr, session.ErrDisconnected):
	default: // a real failure: counted, backed off, shown
		f.tries[r.queue]++
		o.mu.Lock()
		attempt := o.backoff[r.queue].attempt
		o.mu.Unlock()
		wait = f.s.Backoff(attempt)
		if err := o.noteAttempt(r.it, rerr); err != nil {
			return true, err
		}
	}
	o.mu.Lock()
	b := o.backoff[r.queue]
	o.backoff[r.queue] = backoff{attempt: b.attempt + 1, until: o.cfg.Now().Add(wait)}
	o.mu.Unlock()
	return false, nil
}

// gone reports whether the item with message id id has left the outbox.
func (o *Sender) gone(id string) bool {
	err := o.cfg.Store.View(func(tx *store.Tx) error { _, err := tx.OutboxItem(id); return err })
	return errors.Is(err, store.ErrNotFound)
}

// settle records the accepted results: text and media messages move to
// history, control items are recorded on their own. Moving an item to
// history, and removing a receipt or settings item, is put off to the
// store's next write (settleLater), which saves a commit per message. A
// result whose recording fails gets that error (local and retryable: the
// item is sent again under its id, and the server's answer repeats).
func (o *Sender) settle(rs []result) {
	var texts []int
	for i, r := range rs {
		switch {
		case r.ok == nil:
		case r.it.Control != nil:
			if err := o.cfg.ControlSent(r.it); err != nil {
				rs[i].err = localRetry(err)
			}
		case r.it.Body != nil:
			o.settleLater(r.it.ID, func(tx *store.Tx) error { return deleteSent(tx, r.it.ID) })
		default:
			texts = append(texts, i)
		}
	}
	if len(texts) == 0 {
		return
	}
	user, err := o.cfg.User()
	if err != nil {
		for _, i := range texts {
			rs[i].err = localRetry(err)
		}
		return
	}
	for _, i := range texts {
		r := rs[i]
		server := time.UnixMilli(r.ok.GetServerTimeMs()).UTC()
		m := store.Message{ID: r.it.ID, Conversation: r.req.GetConversationId(), From: user, Text: r.it.Text, Media: r.it.Media,
			SentAt: server, Seq: r.ok.GetConversationSeq(), Recipients: r.it.Recipients}
		if !r.it.Created.IsZero() { // the sender's time, as the body carries it
			m.SentAt, m.ServerTime = time.UnixMilli(r.it.Created.UnixMilli()).UTC(), &server
		}
		o.settleLater(r.it.ID, func(tx *store.Tx) error {
			if _, err := tx.AddHistory(m); err != nil {
				return err
			}
			return deleteSent(tx, m.ID)
		})
	}
}

// deleteSent removes a sent item from the outbox; one that is not there
// any more was finished by another run on this profile.
func deleteSent(tx *store.Tx, id string) error {
	if err := tx.DeleteOutbox(id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// localRetry marks a local failure after the server accepted a message
// as retryable: the item is sent again and deduplicated.
func localRetry(err error) error {
	return wire.E("client.Flush", wire.Code_CODE_UNAVAILABLE, "recording a sent message", err)
}

// failItem marks the item of r failed, with the reason. A receipt or
// settings item is dropped instead when it can never be sent (bodyFailed),
// and otherwise kept for the next Flush (kept).
func (o *Sender) failItem(r result, reason error) (kept bool, err error) {
	it := r.it
	if it.Body != nil {
		if r.refused || (o.cfg.Gone != nil && o.cfg.Gone(it, reason)) {
			return false, o.bodyFailed(it, reason)
		}
		o.cfg.Log.Warn("receipt or settings not sent now, kept for the next flush", "id", it.ID, "conversation", it.Conversation, "err", reason)
		return true, o.update(it.ID, func(cur *store.OutboxItem) {
			cur.Attempts++
			cur.LastError, cur.Failed = reason.Error(), reason.Error()
		})
	}
	o.cfg.Log.Warn("message not delivered", "id", it.ID, "err", reason)
	return false, o.update(it.ID, func(cur *store.OutboxItem) { cur.Failed = reason.Error() })
}

// noteAttempt records a retryable failure on the item (outbox list).
func (o *Sender) noteAttempt(it store.OutboxItem, reason error) error {
	return o.update(it.ID, func(cur *store.OutboxItem) { cur.Attempts++; cur.LastError = reason.Error() })
}

// update changes the stored item with message id id, if it is still there.
func (o *Sender) update(id string, change func(*store.OutboxItem)) error {
	return o.cfg.Store.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // finished by another run meanwhile
		} else if err != nil {
			return err
		}
		change(&cur)
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

// Retry clears the failed mark of the item with message id id, and the
// backoff of its queue, so that the next Flush sends it (after the items
// queued before it in its conversation that are not failed). It returns
// store.ErrNotFound if the outbox has no such item.
func (o *Sender) Retry(id string) error {
	var key string
	err := o.cfg.Store.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(id)
		if err != nil {
			return err
		}
		key = o.key(tx, cur)
		cur.Failed = ""
		return tx.UpdateOutbox(cur)
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	delete(o.backoff, key)
	o.mu.Unlock()
	return nil
}
