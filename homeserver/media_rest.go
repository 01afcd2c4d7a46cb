package homeserver

import (
	"context"
	"errors"
	"io"
	"os"

	"hearth/homeserver/wire"
	"hearth/keys/media"
	"hearth/storage"
)

// OpenMedia opens a complete media for the bearer of an access token of an
// active device of this server (REST GET /hearth/v1/media/ID). As with
// DownloadMedia, the id is the capability: the server holds ciphertext.
func (s *Server) OpenMedia(ctx context.Context, accessToken, mediaID string) (io.ReadSeekCloser, error) {
	const op = "homeserver.OpenMedia"
	d, err := s.checkAccessToken(ctx, accessToken)
	if err != nil {
		return nil, wire.E(op, err)
	}
	if d.Status != storage.DeviceActive {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device waits for approval")
	}
	if !media.ValidID(mediaID) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	}
	m := s.mediaSt
	var row *storage.Media
	err = s.db.Read(ctx, func(tx *storage.Tx) (err error) { row, err = tx.CompleteMediaByID(mediaID); return })
	if errors.Is(err, storage.ErrNotFound) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	} else if err != nil {
		return nil, internal(op, err)
	}
	f, err := os.Open(m.completePath(row.MediaID))
	if err != nil {
		return nil, internal(op, err)
	}
	return f, nil
}
