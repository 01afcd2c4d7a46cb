package session

import (
	"context"
	"fmt"

	"hearth/homeserver/wire"
)

// earlyAuth is a connection whose Hello (and Sync) are written but not yet
// answered. Requests made meanwhile (Session.Call) are written behind them
// at once, pipelined, instead of waiting a round trip for the answers: the
// server handles a stream's frames in order, so they run authenticated. If
// the authentication fails, the server refused them without acting, and
// they fail with ErrDisconnected so that callers retry once connected.
type earlyAuth struct {
	c    *Conn
	done chan struct{} // closed when the verdict is known
	err  error         // the verdict: nil once Hello and Sync were accepted
}

// publishEarly makes c usable by Call before its authentication is
// answered; the caller settles it with settleEarly.
func (s *Session) publishEarly(c *Conn) *earlyAuth {
	ea := &earlyAuth{c: c, done: make(chan struct{})}
	s.mu.Lock()
	s.early = ea
	s.mu.Unlock()
	s.bump()
	return ea
}

// settleEarly records the authentication's verdict for the requests
// pipelined behind it and stops taking new ones.
func (s *Session) settleEarly(ea *earlyAuth, err error) {
	if ea == nil {
		return
	}
	s.mu.Lock()
	if s.early == ea {
		s.early = nil
	}
	s.mu.Unlock()
	ea.err = err
	close(ea.done)
}

// callEarly sends a request behind an unanswered Hello and returns its
// answer once the Hello and Sync were accepted.
func (s *Session) callEarly(ctx context.Context, ea *earlyAuth, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
	wait, err := ea.c.Start(ctx, op, f)
	if err != nil {
		return nil, err
	}
	r, err := wait(ctx)
	select {
	case <-ea.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if ea.err != nil {
		return nil, fmt.Errorf("%s: %w: sent behind an authentication that failed: %v", op, ErrDisconnected, ea.err)
	}
	return r, err
}
