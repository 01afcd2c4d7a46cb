package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"hearth/client/session"
	"hearth/homeserver/wire"
)

// link holds this device's session with its homeserver: started on first
// use with the configuration start returns (from the account as it is
// then), ended by reset so that the next request authenticates afresh.
type link struct {
	start func() (session.Config, error)
	log   *slog.Logger

	mu   sync.Mutex
	sess *session.Session
	// headUnclaimed: Connect started the running session, and the mailbox
	// head its first connection learned (from the Sync sent with the
	// Hello) has not been claimed by a Receive yet (claimHead).
	headUnclaimed bool
}

// session returns the running session, starting it on first use.
func (l *link) session(ctx context.Context) (*session.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil {
		if err := l.sess.Err(); err != nil {
			return nil, err
		}
		return l.sess, nil
	}
	cfg, err := l.start()
	if err != nil {
		return nil, err
	}
	l.sess = session.Start(context.WithoutCancel(ctx), cfg)
	return l.sess, nil
}

// connect is session for Client.Connect: a session it starts leaves its
// first head for the next Receive to claim.
func (l *link) connect(ctx context.Context) (*session.Session, error) {
	l.mu.Lock()
	started := l.sess == nil
	l.mu.Unlock()
	s, err := l.session(ctx)
	if err == nil && started {
		l.mu.Lock()
		l.headUnclaimed = l.sess == s
		l.mu.Unlock()
	}
	return s, err
}

// claimHead reports, once per session Connect started, that s is that
// session and no Receive has claimed its first head yet: the connection's
// own Sync, sent with the Hello after Connect was called, gives that
// Receive the mailbox head without a Sync of its own.
func (l *link) claimHead(s *session.Session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != s || !l.headUnclaimed {
		return false
	}
	l.headUnclaimed = false
	return true
}

// caughtUp reports whether the session runs, is connected and has
// processed everything the server announced; it starts nothing.
func (l *link) caughtUp() bool {
	l.mu.Lock()
	s := l.sess
	l.mu.Unlock()
	if s == nil || s.Err() != nil {
		return false
	}
	_, connected, behind := s.Progress()
	return connected && !behind
}

// call sends one request over the session.
func (l *link) call(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	s, err := l.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.Call(ctx, op, f)
}

// callNow is call without waiting for a connection (see Session.CallNow).
func (l *link) callNow(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	s, err := l.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.CallNow(ctx, op, f)
}

// callIdempotent is call for requests that may safely run twice (reads,
// and Send with its message id): a request cut off by a lost connection is
// sent again once the session is back, until ctx ends.
func (l *link) callIdempotent(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	for {
		r, err := l.call(ctx, op, f)
		if err == nil || !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
			return r, err
		}
		l.log.Debug("request cut off, resending", "op", op)
	}
}

// reset ends the current session; the next request starts a new one
// (which authenticates afresh, e.g. after the device was approved).
func (l *link) reset() {
	l.mu.Lock()
	old := l.sess
	l.sess = nil
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
}
