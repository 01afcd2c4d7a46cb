package session

import (
	"context"
	"fmt"
	"time"
)

// quicRetrier is a transport connection that is a fallback (the WebSocket
// chosen because WebTransport failed or was slow) and says after how long
// a new dial would try WebTransport first again (client/transport's
// Conn.RetryQUICAfter; 0: not a fallback).
type quicRetrier interface {
	RetryQUICAfter() time.Duration
}

// idleCheck is how often backToQUIC looks again while requests are in flight.
const idleCheck = time.Second

// backToQUIC ends a fallback connection once the transport would try
// WebTransport again and no request is waiting on it, so that the session
// redials and moves back to QUIC where UDP works again; where it still
// does not, the redial lands on the WebSocket once more (the transport
// remembers the failure again) and this repeats after the next period.
// Nothing is lost: the session resyncs after the last processed delivery.
func (s *Session) backToQUIC(ctx context.Context, c *Conn, after time.Duration) {
	t := time.NewTimer(after)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
		}
		if c.idle() {
			s.log.Info("leaving the WebSocket fallback to try WebTransport again")
			c.fail(fmt.Errorf("%w: leaving the WebSocket fallback to try WebTransport again", ErrDisconnected))
			return
		}
		t.Reset(idleCheck)
	}
}

// idle reports whether no request waits for its answer on c.
func (c *Conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) == 0
}
