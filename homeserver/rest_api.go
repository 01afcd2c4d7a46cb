package homeserver

import (
	"context"

	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// RefreshTokens trades a refresh token for a new access and refresh token
// (REST POST /hearth/v1/token/refresh) for the client at remote
// ("host:port"), as the Refresh request of the control stream does: the
// old refresh token stops working, and presenting it again revokes the
// whole chain. Attempts per client address are limited (as logins are):
// each costs a write transaction.
func (s *Server) RefreshTokens(ctx context.Context, remote, refreshToken string) (*wire.RefreshOK, error) {
	const op = "homeserver.RefreshTokens"
	if addr := clientAddr(remote); perAddrLimited(addr) {
		if err := s.auth.limits.check(op, "refresh-addr:"+addr, s.now(), refreshPerAddrPerSec, refreshPerAddrBurst); err != nil {
			return nil, err
		}
	}
	ok, err := s.auth.rotateRefresh(ctx, refreshToken)
	if err != nil {
		return nil, wire.E(op, err)
	}
	return ok, nil
}

// REST token refreshes per client address: a burst, then one a second.
const (
	refreshPerAddrBurst  = 20
	refreshPerAddrPerSec = 1.0
)

// Conversations lists the conversations of the user of an active device,
// for the bearer of its access token (REST GET /hearth/v1/conversations),
// as the ListConversations request does.
func (s *Server) Conversations(ctx context.Context, accessToken string) ([]*wire.ConversationInfo, error) {
	const op = "homeserver.Conversations"
	d, err := s.auth.checkAccessToken(ctx, accessToken)
	if err != nil {
		return nil, wire.E(op, err)
	}
	if d.Status != storage.DeviceActive {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device waits for approval")
	}
	var out []*wire.ConversationInfo
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { out, err = hub.OfUser(tx, d.UserID); return err }); err != nil {
		return nil, internal(op, err)
	}
	return out, nil
}
