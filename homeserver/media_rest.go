package homeserver

import (
	"context"
	"io"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// OpenMedia opens a complete media for the bearer of an access token of an
// active device of this server (REST GET /hearth/v1/media/ID). As with
// DownloadMedia, the id is the capability: the server holds ciphertext.
func (s *Server) OpenMedia(ctx context.Context, accessToken, mediaID string) (io.ReadSeekCloser, error) {
	const op = "homeserver.OpenMedia"
	d, err := s.auth.checkAccessToken(ctx, accessToken)
	if err != nil {
		return nil, wire.E(op, err)
	}
	if d.Status != storage.DeviceActive {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device waits for approval")
	}
	return s.mediaSt.Open(ctx, op, mediaID)
}
