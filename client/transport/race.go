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

// race dials WebTransport and, once its QUIC handshake has not completed
// within opts.RaceDelay (or as soon as it failed), the WebSocket beside
// it; the first to connect wins. A WebSocket win while WebTransport is still
// trying does not stop that attempt: it runs on (at most QUICTimeout) so
// that its failure is remembered (memo.go) and the next dials go to the
// WebSocket at once; if it connects after all, it is closed.
func race(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	results := make(chan dialResult, 2)
	answered := make(chan struct{})
	qctx, qcancel := context.WithTimeout(ctx, opts.QUICTimeout)
	go func() {
		c, err := dialWebTransport(qctx, addr, opts, answered)
		qcancel()
		results <- dialResult{c: c, err: err}
	}()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wsStarted := false
	startWS := func() {
		wsStarted = true
		go func() {
			c, err := dialWebSocket(wctx, addr, opts)
			results <- dialResult{c: c, err: err, ws: true}
		}()
	}
	var timer <-chan time.Time
	if opts.RaceDelay > 0 {
		t := time.NewTimer(opts.RaceDelay)
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
		case r := <-results:
			switch {
			case r.err == nil && !r.ws:
				opts.memo.forget(addr)
				if wsStarted && wsErr == nil {
					wcancel()
					go closeLate(results) // the WebSocket may still connect
				}
				return r.c, nil
			case r.err == nil: // the WebSocket won
				// The memo is written now (WebTransport failed) or once
				// the attempt still running fails (at most QUICTimeout).
				r.c.raced, r.c.retryQUIC = true, quicBlockedFor+opts.QUICTimeout+retryMargin
				if wtDone {
					if ctx.Err() == nil {
						opts.memo.remember(addr)
					}
				} else {
					go settleQUIC(ctx, results, addr, opts.memo)
				}
				return r.c, nil
			case r.ws:
				wsErr = fmt.Errorf("websocket: %w", r.err)
			default:
				wtDone, wtErr = true, fmt.Errorf("webtransport: %w", r.err)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("transport: dial %s: %w", addr, r.err)
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
// and never will, which race avoids by starting it when WebTransport fails).
func wsDone(started bool, err error) bool { return started && err != nil }

// settleQUIC waits for the WebTransport attempt that lost the race: its
// failure marks addr as blocking QUIC, a late success is closed.
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
