package client

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// registerRequest sends Register (LoginParams.InviteCode set) on a
// connection of its own: the server creates the account with the invite
// and answers like a first Login, so Login goes on exactly as for a first
// device.
func (c *Client) registerRequest(ctx context.Context, p LoginParams, link *identity.LinkPrivateKey, sig ed25519.PrivateKey) (*wire.LoginOK, error) {
	const op = "client.Register"
	rw, err := c.cfg.Dial(ctx, p.Server, p.CAPath)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", op, p.Server, err)
	}
	cn := newConn(rw, 0)
	defer cn.Close()
	r, err := cn.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_Register{Register: &wire.Register{
		InviteCode: p.InviteCode, User: p.User, Password: p.Password, DeviceName: p.DeviceName,
		LinkPublicKey: link.Public().Bytes(), SignatureKey: sig.Public().(ed25519.PublicKey),
	}}})
	if err != nil {
		return nil, err
	}
	return r.GetLoginOk(), nil
}
