package client

import (
	"context"
	"fmt"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// QueueBytes is QueueFile for a client without a file system (the web
// client): the file is name with contents data, of type mimeType (guessed
// from name when empty). It is encrypted in memory and uploaded, and the
// message referring to it is in the outbox when it returns (Flush sends
// it). It returns the message id and the media reference it carries. An
// upload cut off by the end of ctx starts over on the next call.
func (c *Client) QueueBytes(ctx context.Context, to, name, mimeType string, data []byte) (string, store.MediaRef, error) {
	const op = "client.SendFile"
	if c.cfg.Groups == nil {
		return "", store.MediaRef{}, fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	if to == "" {
		return "", store.MediaRef{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a recipient is required")
	}
	a, err := c.acct.Account()
	if err != nil {
		return "", store.MediaRef{}, err
	} else if !a.Active {
		return "", store.MediaRef{}, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "this device is not approved yet")
	}
	if err := c.st.View(func(tx *store.Tx) error { _, _, err := resolveRecipient(tx, op, to, a.User); return err }); err != nil {
		return "", store.MediaRef{}, err
	}
	if mimeType == "" {
		mimeType = guessType(name)
	}
	if mimeType, err = compactType(mimeType); err != nil {
		return "", store.MediaRef{}, wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	ref := &store.MediaRef{Type: mimeType, Name: name, Size: int64(len(data))}
	if err := checkMediaMeta(ref); err != nil {
		return "", store.MediaRef{}, wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	sent, err := c.media.SendBytes(ctx, data)
	if err != nil {
		return "", store.MediaRef{}, err
	}
	ref.ID, ref.Key, ref.SHA256, ref.PlainSHA256, ref.Size = sent.ID, sent.Key, sent.SHA256, sent.PlainSHA256, sent.PlainSize
	if u, err := identity.ParseUser(a.User); err == nil {
		ref.Server = u.Domain
	}
	id, err := c.enqueue(op, to, store.OutboxItem{Media: ref}, nil)
	return id, *ref, err
}
