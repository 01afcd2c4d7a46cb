package fedlink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"hearth/federation"
	"hearth/homeserver/wire"
)

// peerDown remembers the peers whose last query got no answer, so that
// queries to a peer that is down fail at once with CODE_UNAVAILABLE
// instead of each waiting for a dial timeout (a device fetches its
// correspondent's device list before every send). A peer is down for
// queries while
//
//   - the outbound queue to it backs off after an attempt that got no
//     answer (federation.Outbound.Down), or
//   - the last query to it got no answer and the link's backoff
//     (Config.Outbound.Backoff of the consecutive count) has not run out.
//
// The first query after the backoff tries for real; queries meanwhile
// still fail at once. An answer, or contact with the peer after the
// failure (an answered or received transaction), ends the state.
type peerDown struct {
	mu sync.Mutex
	m  map[string]*downState
}

type downState struct {
	fails   int       // consecutive queries without an answer
	at      time.Time // the last of them
	until   time.Time // no query before this
	probing bool      // a query is trying for real now
}

// retryIn formats a wait for a message: whole seconds, at least 1s.
func retryIn(d time.Duration) string {
	if d < time.Second {
		return "1s"
	}
	return d.Round(time.Second).String()
}

func unreachable(op, domain string, wait time.Duration) error {
	ms := wait.Milliseconds()
	if ms < 100 {
		ms = 100
	}
	return &wire.Error{Op: op, Kind: wire.Code_CODE_UNAVAILABLE, RetryAfter: ms,
		Msg: fmt.Sprintf("%s is unreachable; retrying in %s", domain, retryIn(wait))}
}

// downErr answers CODE_UNAVAILABLE at once when domain is down; nil means
// the query may go (and, after a backoff, that it is the probe).
func (f *Queries) downErr(op, domain string) error {
	now := f.now()
	if until, ok := f.out.Down(domain); ok {
		return unreachable(op, domain, until.Sub(now))
	}
	f.down.mu.Lock()
	defer f.down.mu.Unlock()
	s := f.down.m[domain]
	switch {
	case s == nil:
		return nil
	case f.out.LastContact(domain).After(s.at):
		delete(f.down.m, domain)
		return nil
	case now.Before(s.until):
		return unreachable(op, domain, s.until.Sub(now))
	case s.probing:
		return unreachable(op, domain, 0)
	}
	s.probing = true
	return nil
}

// noAnswer records that a query to domain got no answer and returns how
// long queries to it now fail at once. A query its caller gave up on says
// nothing about the peer.
func (f *Queries) noAnswer(ctx context.Context, domain string) time.Duration {
	f.down.mu.Lock()
	defer f.down.mu.Unlock()
	s := f.down.m[domain]
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		if s != nil {
			s.probing = false
		}
		return 0
	}
	if f.down.m == nil {
		f.down.m = map[string]*downState{}
	}
	if s == nil {
		s = &downState{}
		f.down.m[domain] = s
	}
	now := f.now()
	s.fails++
	s.at, s.probing = now, false
	wait := f.cfg.Outbound.Backoff.Delay(s.fails)
	s.until = now.Add(wait)
	return wait
}

// answered ends domain's down state (its probe is over, whatever the
// answer said).
func (f *Queries) answered(domain string) {
	f.down.mu.Lock()
	delete(f.down.m, domain)
	f.down.mu.Unlock()
}

// queryFailed turns a failed query into the device's error: a discovery
// refusal keeps its kind when it is permanent (no such server, not a
// domain name) and is CODE_UNAVAILABLE otherwise; no answer marks the
// peer down. The detail (lookup or dial error) goes to the local log only.
func (f *Queries) queryFailed(ctx context.Context, op, domain string, err error) error {
	var fe *federation.Error
	if errors.As(err, &fe) { // discovery failed: the peer was not asked
		f.down.mu.Lock()
		if s := f.down.m[domain]; s != nil {
			s.probing = false
		}
		f.down.mu.Unlock()
		f.log.Info("federation: query not sent", "destination", domain, "code", fe.Kind.String(), "err", err)
		if federation.Permanent(fe) {
			return &wire.Error{Op: op, Kind: wireKind(fe.Kind), Msg: fe.Msg}
		}
		return &wire.Error{Op: op, Kind: wire.Code_CODE_UNAVAILABLE, Msg: fe.Msg, RetryAfter: 1000}
	}
	wait := f.noAnswer(ctx, domain)
	f.log.Info("federation: query got no answer", "destination", domain, "down_for", wait, "err", err)
	return unreachable(op, domain, wait)
}
