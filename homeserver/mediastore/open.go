package mediastore

import (
	"context"
	"errors"
	"io"
	"os"

	"hearth/homeserver/wire"
	"hearth/keys/media"
	"hearth/storage"
)

// Open opens a complete media for reading (the REST GET of a media by id:
// the id is the capability, the bytes are ciphertext).
func (m *Store) Open(ctx context.Context, op, mediaID string) (io.ReadSeekCloser, error) {
	if !media.ValidID(mediaID) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	}
	var row *storage.Media
	err := m.db.Read(ctx, func(tx *storage.Tx) (err error) { row, err = tx.CompleteMediaByID(mediaID); return })
	if errors.Is(err, storage.ErrNotFound) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	} else if err != nil {
		return nil, wire.Internal(op, err)
	}
	f, err := os.Open(m.completePath(row.MediaID))
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	return f, nil
}
