package client

import (
	"context"
	"errors"

	"hearth/client/session"
	"hearth/client/transfer"
	"hearth/homeserver/wire"
)

// DefaultMediaConnections is Config.MediaConnections when not set.
const DefaultMediaConnections = 4

// openMediaLane opens one more session of this device for a file transfer
// (client/transfer): its own connection (a QUIC connection, resumed with
// the profile's session ticket, or a WebSocket over its own TCP
// connection), requests only: no mailbox, no presence, no signals.
func (c *Client) openMediaLane(ctx context.Context) (transfer.Lane, error) {
	cfg, err := c.sessionConfig()
	if err != nil {
		return transfer.Lane{}, err
	}
	cfg.Handler, cfg.Passive, cfg.OnSignal, cfg.OnRevokedListed = nil, true, nil, nil
	s := session.Start(context.WithoutCancel(ctx), cfg)
	call := func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
		return s.Call(ctx, op, f)
	}
	idempotent := func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error) {
		for {
			r, err := s.Call(ctx, op, f)
			if err == nil || !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
				return r, err
			}
		}
	}
	return transfer.Lane{Call: call, CallIdempotent: idempotent, Close: s.Close}, nil
}
