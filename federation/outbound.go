package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// Queued is one envelope in a destination's durable queue.
type Queued struct {
	QueueID   int64 // queue order
	Envelope  *fedwire.Envelope
	CreatedMs int64
}

// Queue is the durable outbound store the sender loops drain.
type Queue interface {
	// Batch returns up to limit queued envelopes for dest, oldest first.
	Batch(ctx context.Context, dest string, limit int) ([]Queued, error)
	// Finish removes envelopes the destination answered with a final code
	// (results[i] answers done[i]) and acts on refusals.
	Finish(ctx context.Context, dest string, done []Queued, results []*fedwire.EnvelopeResult) error
	// Expire removes envelopes undeliverable past the expiry and reports
	// them to their senders as failed.
	Expire(ctx context.Context, dest string, expired []Queued) error
}

// Transactor sends a signed transaction to a destination.
type Transactor interface {
	Send(ctx context.Context, destination string, st *fedwire.SignedTransaction) (*fedwire.TransactionResult, error)
}

var _ Transactor = (*Client)(nil)

// OutboundConfig tunes the sender loops.
type OutboundConfig struct {
	MaxEnvelopes int // per transaction; default 100
	// MaxTransactionBytes bounds the envelopes of one transaction, below
	// the receiver's Limits.MaxTransactionBytes (same default, 16 MiB); a
	// batch is cut to fit, and an envelope too large on its own goes alone.
	MaxTransactionBytes int
	Backoff             Backoff       // retry delays
	Expiry              time.Duration // undeliverable after this; default 7 days
	IdlePoll            time.Duration // an idle queue is looked at this often anyway; default 2s
}

// Outbound runs one sender loop per destination: one transaction in
// flight, envelopes in queue order, backoff after failures, reset on contact.
type Outbound struct {
	Self string
	Key  *serverkey.Key
	// CurrentKey, when set, returns the key to sign with now (it changes
	// on rotation); Key is used when it is nil.
	CurrentKey func() *serverkey.Key
	Net        Transactor
	Queue      Queue
	Cfg        OutboundConfig
	Log        *slog.Logger
	Now        func() time.Time
	// Allowed is the policy for destinations (nil: all). A denied
	// destination's queue waits (backing off) until it is allowed again or
	// its envelopes expire.
	Allowed func(domain string) bool

	mu     sync.Mutex
	loops  map[string]*destLoop
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once
}

// DestStatus is what `federation list` shows of one destination.
type DestStatus struct {
	Destination string
	Attempts    int       // consecutive failed attempts (0: healthy)
	LastContact time.Time // zero: never
	NextAttempt time.Time // zero: not backing off
	LastError   string
	// Unreachable: the last attempt got no answer at all (a network
	// failure), not a refusal.
	Unreachable   bool
	Sent, Expired uint64
}

// noAnswer marks an attempt that got no answer from the destination.
type noAnswer struct{ err error }

func (e noAnswer) Error() string { return e.err.Error() }
func (e noAnswer) Unwrap() error { return e.err }

type destLoop struct {
	dest string
	wake chan struct{}

	mu sync.Mutex
	st DestStatus
}

func (o *Outbound) init() {
	o.once.Do(func() {
		o.loops = map[string]*destLoop{}
		o.stop = make(chan struct{})
		if o.Cfg.MaxEnvelopes <= 0 {
			o.Cfg.MaxEnvelopes = 100
		}
		if o.Cfg.MaxTransactionBytes <= 0 {
			o.Cfg.MaxTransactionBytes = DefaultMaxTransactionBytes
		}
		if o.Cfg.IdlePoll <= 0 {
			o.Cfg.IdlePoll = 2 * time.Second
		}
		if o.Cfg.Expiry <= 0 {
			o.Cfg.Expiry = 7 * 24 * time.Hour
		}
		if o.Log == nil {
			o.Log = slog.New(slog.DiscardHandler)
		}
		if o.Now == nil {
			o.Now = time.Now
		}
	})
}

// Wake makes dest's loop look at its queue now (starting it if needed).
func (o *Outbound) Wake(dest string) {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	l, ok := o.loops[dest]
	if !ok {
		l = &destLoop{dest: dest, wake: make(chan struct{}, 1)}
		l.st.Destination = dest
		o.loops[dest] = l
		o.wg.Add(1)
		go o.run(l)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Contact records that dest was heard from (it sent us a valid
// transaction): its backoff resets and its queue is tried at once.
func (o *Outbound) Contact(dest string) {
	o.init()
	o.mu.Lock()
	l := o.loops[dest]
	o.mu.Unlock()
	if l != nil {
		l.mu.Lock()
		l.st.Attempts, l.st.Unreachable = 0, false
		l.st.LastContact = o.Now()
		l.mu.Unlock()
	}
	o.Wake(dest)
	if l == nil {
		o.mu.Lock()
		l = o.loops[dest]
		o.mu.Unlock()
		if l != nil {
			l.mu.Lock()
			l.st.LastContact = o.Now()
			l.mu.Unlock()
		}
	}
}

// Status returns every destination's state, by name.
func (o *Outbound) Status() []DestStatus {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]DestStatus, 0, len(o.loops))
	for _, l := range o.loops {
		l.mu.Lock()
		out = append(out, l.st)
		l.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// Down reports whether dest's last attempt got no answer and its backoff
// has not run out: until is when the queue tries again. Queries to dest
// fail at once meanwhile instead of waiting for a timeout.
func (o *Outbound) Down(dest string) (until time.Time, down bool) {
	o.init()
	o.mu.Lock()
	l := o.loops[dest]
	o.mu.Unlock()
	if l == nil {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Unreachable && l.st.Attempts > 0 && o.Now().Before(l.st.NextAttempt) {
		return l.st.NextAttempt, true
	}
	return time.Time{}, false
}

// LastContact is when dest last answered a transaction or sent one
// (zero: never since the server started).
func (o *Outbound) LastContact(dest string) time.Time {
	o.init()
	o.mu.Lock()
	l := o.loops[dest]
	o.mu.Unlock()
	if l == nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.LastContact
}

// Close stops every loop and waits for them.
func (o *Outbound) Close() {
	o.init()
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.stop)
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func (o *Outbound) run(l *destLoop) {
	defer o.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-o.stop; cancel() }()
	for {
		more, err := o.attempt(ctx, l)
		var wait time.Duration
		l.mu.Lock()
		switch {
		case err != nil:
			l.st.Attempts++
			l.st.LastError = err.Error()
			l.st.Unreachable = errors.As(err, new(noAnswer))
			wait = o.Cfg.Backoff.Delay(l.st.Attempts)
			l.st.NextAttempt = o.Now().Add(wait)
		case more:
			l.st.NextAttempt, l.st.Unreachable = time.Time{}, false
		default:
			// Idle: wakes come when envelopes are queued; the poll is a
			// safety net for a wake that raced its commit.
			l.st.NextAttempt, l.st.Unreachable = time.Time{}, false
			wait = o.Cfg.IdlePoll
		}
		l.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			o.Log.Info("federation: delivery failed, backing off", "destination", l.dest, "wait", wait, "err", err)
		}
		if more && err == nil {
			continue
		}
		var timer <-chan time.Time
		var t *time.Timer
		if wait >= 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		if !o.sleep(l, err != nil, timer) {
			return
		}
		if t != nil {
			t.Stop()
		}
	}
}

// sleep waits for the timer or a wake; during a backoff a wake only ends
// the wait when the peer was heard from (Contact reset the attempts).
// It returns false when the loops stop.
func (o *Outbound) sleep(l *destLoop, backingOff bool, timer <-chan time.Time) bool {
	for {
		select {
		case <-o.stop:
			return false
		case <-timer:
			return true
		case <-l.wake:
			if !backingOff || timer == nil {
				return true
			}
			l.mu.Lock()
			reset := l.st.Attempts == 0
			l.mu.Unlock()
			if reset {
				return true
			}
		}
	}
}

// attempt sends one transaction; more reports a full batch (drain on).
func (o *Outbound) attempt(ctx context.Context, l *destLoop) (more bool, err error) {
	batch, err := o.Queue.Batch(ctx, l.dest, o.Cfg.MaxEnvelopes)
	if err != nil {
		return false, fmt.Errorf("read queue: %w", err)
	}
	if len(batch) == 0 {
		return false, nil
	}
	now := o.Now()
	var live, expired []Queued
	for _, q := range batch {
		if now.Sub(time.UnixMilli(q.CreatedMs)) > o.Cfg.Expiry {
			expired = append(expired, q)
		} else {
			live = append(live, q)
		}
	}
	if len(expired) > 0 {
		if err := o.Queue.Expire(ctx, l.dest, expired); err != nil {
			return false, fmt.Errorf("expire: %w", err)
		}
		l.mu.Lock()
		l.st.Expired += uint64(len(expired))
		l.mu.Unlock()
		o.Log.Warn("federation: envelopes expired undelivered; senders told", "destination", l.dest, "count", len(expired))
	}
	if len(live) == 0 {
		return true, nil
	}
	live, cut := fitTransaction(live, o.Cfg.MaxTransactionBytes)
	if o.Allowed != nil && !o.Allowed(l.dest) {
		return false, fmt.Errorf("federation with %s is not allowed by the policy", l.dest)
	}
	txn := &fedwire.Transaction{Origin: o.Self, Destination: l.dest, TxnId: newTxnID(), OriginTimeMs: now.UnixMilli()}
	for _, q := range live {
		txn.Envelopes = append(txn.Envelopes, q.Envelope)
	}
	key := o.Key
	if o.CurrentKey != nil {
		key = o.CurrentKey()
	}
	st, err := SignTransaction(key, txn)
	if err != nil {
		return false, err
	}
	res, err := o.Net.Send(ctx, l.dest, st)
	if err != nil {
		if errors.As(err, new(*Error)) { // discovery refused: the peer was not asked
			if Permanent(err) {
				// The domain has no Hearth server (or is no domain): what
				// is queued for it can never be delivered. It expires now,
				// by the path of the expiry (senders are told), instead
				// of waiting out Expiry.
				if xerr := o.Queue.Expire(ctx, l.dest, live); xerr != nil {
					return false, fmt.Errorf("expire: %w", xerr)
				}
				l.mu.Lock()
				l.st.Expired += uint64(len(live))
				l.mu.Unlock()
				o.Log.Warn("federation: destination has no server; its envelopes expired, senders told", "destination", l.dest, "count", len(live), "err", err)
				return true, nil
			}
			return false, err
		}
		return false, noAnswer{err}
	}
	l.mu.Lock()
	l.st.LastContact = o.Now()
	l.mu.Unlock()
	if res.Code != fedwire.Code_CODE_OK {
		return false, fmt.Errorf("transaction refused: %s: %s", res.Code, res.Message)
	}
	byID := map[string]*fedwire.EnvelopeResult{}
	for _, r := range res.Results {
		byID[r.Id] = r
	}
	var done []Queued
	var results []*fedwire.EnvelopeResult
	temp := 0
	for _, q := range live {
		r := byID[q.Envelope.Id]
		if r == nil {
			r = &fedwire.EnvelopeResult{Id: q.Envelope.Id, Code: fedwire.Code_CODE_UNAVAILABLE, Message: "no answer"}
		}
		if Retryable(r.Code) {
			temp++
			continue
		}
		done = append(done, q)
		results = append(results, r)
	}
	if len(done) > 0 {
		if err := o.Queue.Finish(ctx, l.dest, done, results); err != nil {
			return false, fmt.Errorf("finish: %w", err)
		}
	}
	l.mu.Lock()
	l.st.Sent += uint64(len(done))
	if temp == 0 {
		l.st.Attempts, l.st.LastError = 0, ""
	}
	l.mu.Unlock()
	if temp > 0 {
		return false, fmt.Errorf("%d envelopes refused for now", temp)
	}
	return cut || len(batch) == o.Cfg.MaxEnvelopes, nil
}

// txnOverhead is room left in a transaction for its header, the
// signature and each envelope's framing.
const txnOverhead = 4096

// fitTransaction keeps the longest prefix of qs whose envelopes fit in
// limit bytes (at least one, which then goes alone); cut reports that
// some were left for the next transaction.
func fitTransaction(qs []Queued, limit int) (fit []Queued, cut bool) {
	total := txnOverhead
	for i, q := range qs {
		total += proto.Size(q.Envelope) + 8
		if total > limit && i > 0 {
			return qs[:i], true
		}
	}
	return qs, false
}

func newTxnID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
