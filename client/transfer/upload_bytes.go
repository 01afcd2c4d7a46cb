package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"hearth/keys/media"
)

// Sent describes a finished upload for the media reference of the
// message that refers to it.
type Sent struct {
	ID          string // the server's media id
	Key         string // the media key, text form
	SHA256      string // of the ciphertext, hex
	PlainSHA256 string // of the file, hex
	PlainSize   int64
}

// SendBytes encrypts plain under a fresh key in memory and uploads it. It
// is the upload of a client without a file system (the web client, where
// the page hands over a file's bytes): nothing is recorded for resuming
// in a later run, but a connection lost meanwhile is resumed as by Send.
func (t *Transfer) SendBytes(ctx context.Context, plain []byte) (Sent, error) {
	const op = "client.SendBytes"
	key, err := media.NewKey(t.cfg.Rand)
	if err != nil {
		return Sent{}, fmt.Errorf("%s: %w", op, err)
	}
	var ct bytes.Buffer
	sealed, err := media.Encrypt(&ct, bytes.NewReader(plain), key, t.cfg.Rand)
	if err != nil {
		return Sent{}, fmt.Errorf("%s: %w", op, err)
	}
	id, err := t.upload(ctx, bytes.NewReader(ct.Bytes()), sealed, "", func(string) error { return nil })
	if err != nil {
		return Sent{}, err
	}
	sum := sha256.Sum256(plain)
	return Sent{ID: id, Key: key.Text(), SHA256: hex.EncodeToString(sealed.SHA256[:]),
		PlainSHA256: hex.EncodeToString(sum[:]), PlainSize: sealed.PlainSize}, nil
}
