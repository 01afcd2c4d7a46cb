//go:build !js

package transport

import "context"

// race dials QUIC (dialQUIC: native, else WebTransport) and the WebSocket
// as raceDial does, QUIC alone for opts.RaceDelay. A native 0-RTT dial
// wins at once and runs this race behind its stream instead
// (nativeConn.settle).
func race(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	ws := func(ctx context.Context) (*Conn, error) { return dialWebSocket(ctx, addr, opts) }
	return raceDial(ctx, addr, racers{
		quic: func(ctx context.Context, answered chan<- struct{}) (*Conn, error) {
			qctx, qcancel := context.WithTimeout(ctx, opts.QUICTimeout)
			defer qcancel()
			return dialQUIC(qctx, addr, opts, answered, ws)
		},
		ws: ws, delay: opts.RaceDelay, quicTimeout: opts.QUICTimeout, memo: opts.memo,
	})
}
