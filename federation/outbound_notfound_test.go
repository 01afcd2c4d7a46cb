package federation

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
	"hearth/keys/testutil"
)

// listQueue holds envelopes until they are finished or expired.
type listQueue struct {
	mu      sync.Mutex
	q       []Queued
	expired []Queued
}

func (l *listQueue) Batch(_ context.Context, _ string, n int) ([]Queued, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Queued(nil), l.q[:min(n, len(l.q))]...), nil
}
func (l *listQueue) Finish(context.Context, string, []Queued, []*fedwire.EnvelopeResult) error {
	return nil
}
func (l *listQueue) Expire(_ context.Context, _ string, x []Queued) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expired = append(l.expired, x...)
	gone := map[int64]bool{}
	for _, q := range x {
		gone[q.QueueID] = true
	}
	var keep []Queued
	for _, q := range l.q {
		if !gone[q.QueueID] {
			keep = append(keep, q)
		}
	}
	l.q = keep
	return nil
}

// errNet answers every send with err.
type errNet struct{ err error }

func (n errNet) Send(context.Context, string, *fedwire.SignedTransaction) (*fedwire.TransactionResult, error) {
	return nil, n.err
}

// TestOutboundNoServerExpires: envelopes queued for a domain that
// discovery says has no server (permanent CODE_NOT_FOUND) expire at once,
// through Queue.Expire (the senders are told), instead of waiting 7 days;
// a temporary discovery failure keeps them queued.
func TestOutboundNoServerExpires(t *testing.T) {
	k, _ := serverkey.Generate(rand.Reader)
	fresh := func() *listQueue {
		q := &listQueue{}
		for i := range 3 {
			q.q = append(q.q, Queued{QueueID: int64(i + 1), Envelope: &fedwire.Envelope{Id: "e", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER}, CreatedMs: time.Now().UnixMilli()})
		}
		return q
	}
	q := fresh()
	o := &Outbound{Self: "a.example", Key: k, Queue: q, Cfg: OutboundConfig{Backoff: Backoff{Base: time.Hour, Max: time.Hour}},
		Net: errNet{errorf("federation.Discover", fedwire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")}}
	defer o.Close()
	o.Wake("gone.example")
	testutil.WaitFor(t, 10*time.Second, func() error {
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.expired) != 3 || len(q.q) != 0 {
			return errors.New("not expired yet")
		}
		return nil
	})

	q2 := fresh()
	o2 := &Outbound{Self: "a.example", Key: k, Queue: q2, Cfg: OutboundConfig{Backoff: Backoff{Base: time.Hour, Max: time.Hour}},
		Net: errNet{errorf("federation.Discover", fedwire.Code_CODE_UNAVAILABLE, "later.example is unreachable")}}
	defer o2.Close()
	o2.Wake("later.example")
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, s := range o2.Status() {
			if s.Attempts > 0 {
				return nil
			}
		}
		return errors.New("no attempt yet")
	})
	q2.mu.Lock()
	defer q2.mu.Unlock()
	if len(q2.expired) != 0 || len(q2.q) != 3 {
		t.Fatalf("a temporary failure expired %d envelopes", len(q2.expired))
	}
}
