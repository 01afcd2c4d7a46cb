package transport

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// dialResult is the outcome of one of the raced dials.
type dialResult struct {
	c   *Conn
	err error
	ws  bool
}

// racers are the two dials raceDial races, native (race) or in the
// browser (browserRace).
type racers struct {
	// quic dials QUIC (native, else WebTransport) within its own time
	// limit; it closes answered, if it can tell, once the handshake
	// completed (UDP works: the WebSocket is not started by the timer).
	quic func(ctx context.Context, answered chan<- struct{}) (*Conn, error)
	ws   func(ctx context.Context) (*Conn, error)
	// delay is how long QUIC dials alone before the WebSocket starts
	// beside it (0: only once QUIC failed); quicTimeout bounds the QUIC
	// attempt (a WebSocket winner retries QUIC after it is remembered).
	delay, quicTimeout time.Duration
	memo               *fallbackMemo
}

// raceDial dials QUIC and, once its handshake has not completed within
// r.delay (or as soon as it failed), the WebSocket beside it; the first to
// connect wins. A WebSocket win while QUIC is still trying does not stop
// that attempt: it runs on (at most quicTimeout) so that its failure is
// remembered (memo.go) and the next dials go to the WebSocket at once; if
// it connects after all, it is closed.
func raceDial(ctx context.Context, addr string, r racers) (*Conn, error) {
	results := make(chan dialResult, 2)
	answered := make(chan struct{})
	go func() {
		c, err := r.quic(ctx, answered)
		results <- dialResult{c: c, err: err}
	}()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wsStarted := false
	startWS := func() {
		wsStarted = true
		go func() {
			c, err := r.ws(wctx)
			results <- dialResult{c: c, err: err, ws: true}
		}()
	}
	var timer <-chan time.Time
	if r.delay > 0 {
		t := time.NewTimer(r.delay)
		defer t.Stop()
		timer = t.C
	}
	var wtErr, wsErr error
	wtDone := false
	for !wtDone || !wsDone(wsStarted, wsErr) {
		select {
		case <-answered: // UDP works: no race
			answered, timer = nil, nil
		case <-timer:
			timer = nil
			if !wsStarted {
				startWS()
			}
		case res := <-results:
			switch {
			case res.err == nil && !res.ws:
				r.memo.forget(addr)
				if wsStarted && wsErr == nil {
					wcancel()
					go closeLate(results) // the WebSocket may still connect
				}
				return res.c, nil
			case res.err == nil: // the WebSocket won
				// The memo is written now (QUIC failed) or once the
				// attempt still running fails (at most quicTimeout).
				res.c.raced, res.c.retryQUIC = true, quicBlockedFor+r.quicTimeout+retryMargin
				if wtDone {
					if ctx.Err() == nil {
						r.memo.remember(addr)
					}
				} else {
					go settleQUIC(ctx, results, addr, r.memo)
				}
				return res.c, nil
			case res.ws:
				wsErr = fmt.Errorf("websocket: %w", res.err)
			default:
				wtDone, wtErr = true, res.err
				if ctx.Err() != nil {
					return nil, fmt.Errorf("transport: dial %s: %w", addr, res.err)
				}
				if !wsStarted {
					startWS()
				}
			}
		}
	}
	return nil, fmt.Errorf("transport: dial %s: %w", addr, errors.Join(wtErr, wsErr))
}

// wsDone reports whether the WebSocket attempt has ended (or never started
// and never will, which raceDial avoids by starting it when QUIC fails).
func wsDone(started bool, err error) bool { return started && err != nil }

// settleQUIC waits for the QUIC attempt that lost the race: its failure
// marks addr as blocking QUIC, a late success is closed.
func settleQUIC(ctx context.Context, results <-chan dialResult, addr string, memo *fallbackMemo) {
	for r := range results {
		if r.ws {
			continue
		}
		if r.err == nil {
			r.c.Close()
		} else if ctx.Err() == nil {
			memo.remember(addr)
		}
		return
	}
}

// closeLate closes the WebSocket that lost the race if it connected anyway.
func closeLate(results <-chan dialResult) {
	r := <-results
	if r.err == nil {
		r.c.Close()
	}
}
