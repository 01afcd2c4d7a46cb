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

// oneEnvelope is a Queue holding one envelope for ever.
type oneEnvelope struct{}

func (oneEnvelope) Batch(context.Context, string, int) ([]Queued, error) {
	return []Queued{{QueueID: 1, Envelope: &fedwire.Envelope{Id: "e1"}, CreatedMs: time.Now().UnixMilli()}}, nil
}
func (oneEnvelope) Finish(context.Context, string, []Queued, []*fedwire.EnvelopeResult) error {
	return nil
}
func (oneEnvelope) Expire(context.Context, string, []Queued) error { return nil }

// switchNet fails with no answer, or answers a refusal, as told.
type switchNet struct {
	mu     sync.Mutex
	refuse bool
	calls  int
}

func (n *switchNet) Send(context.Context, string, *fedwire.SignedTransaction) (*fedwire.TransactionResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.refuse {
		return &fedwire.TransactionResult{Code: fedwire.Code_CODE_FORBIDDEN}, nil
	}
	return nil, errors.New("timeout: no recent network activity")
}

// TestOutboundDown: a queue whose attempt got no answer reports its peer
// down until its next attempt; one refused (an answer) does not; contact
// ends it.
func TestOutboundDown(t *testing.T) {
	k, _ := serverkey.Generate(rand.Reader)
	net := &switchNet{}
	o := &Outbound{Self: "a.example", Key: k, Net: net, Queue: oneEnvelope{},
		Cfg: OutboundConfig{Backoff: Backoff{Base: time.Hour, Max: time.Hour}}}
	defer o.Close()
	o.Wake("b.example")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if _, down := o.Down("b.example"); !down {
			return errors.New("b.example not down after an attempt without answer")
		}
		return nil
	})
	if until, _ := o.Down("b.example"); until.Before(time.Now().Add(29 * time.Minute)) {
		t.Fatalf("down until %v, want the backoff (30..60 minutes)", until)
	}
	if _, down := o.Down("c.example"); down {
		t.Fatal("a destination never tried is down")
	}
	net.mu.Lock()
	net.refuse = true
	net.mu.Unlock()
	o.Contact("b.example") // heard from: tried at once, and refused with an answer
	testutil.WaitFor(t, 10*time.Second, func() error {
		net.mu.Lock()
		defer net.mu.Unlock()
		if net.calls < 2 {
			return errors.New("not tried again after contact")
		}
		return nil
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, st := range o.Status() {
			if st.Destination == "b.example" && st.Attempts == 1 && !st.Unreachable {
				return nil
			}
		}
		return errors.New("refusal not recorded")
	})
	if _, down := o.Down("b.example"); down {
		t.Fatal("a peer that answered (a refusal) is down")
	}
	if o.LastContact("b.example").IsZero() {
		t.Fatal("no last contact after contact")
	}
}
