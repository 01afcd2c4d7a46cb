package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hearth/client/store"
	"hearth/client/transfer"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// ErrNoMedia is returned by MediaOf for a message without a file.
var ErrNoMedia = errors.New("client: message has no media")

// SendFile encrypts the file at path, uploads it and sends a message to
// (user@domain or conversation) that refers to it; mimeType may be empty
// (then guessed from the file name). It returns the message id. As with
// Queue + Flush, a message whose sending fails after it was queued stays
// queued and a later Flush sends it.
func (c *Client) SendFile(ctx context.Context, to, path, mimeType string) (string, error) {
	id, err := c.QueueFile(ctx, to, path, mimeType)
	if err != nil {
		return "", err
	}
	return id, c.Flush(ctx, id)
}

// QueueFile is SendFile without the Flush: the file is encrypted and
// uploaded (resuming across reconnects) and the message referring to it is
// in the outbox when it returns.
func (c *Client) QueueFile(ctx context.Context, to, path, mimeType string) (string, error) {
	const op = "client.SendFile"
	if c.cfg.Groups == nil {
		return "", fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	if to == "" {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a recipient is required")
	}
	a, err := c.acct.Account()
	if err != nil {
		return "", err
	} else if !a.Active {
		return "", wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "this device is not approved yet")
	}
	// Refuse a bad recipient before uploading anything.
	if err := c.st.View(func(tx *store.Tx) error { _, _, err := resolveRecipient(tx, op, to, a.User); return err }); err != nil {
		return "", err
	}
	if mimeType == "" {
		mimeType = guessType(path)
	}
	if mimeType, err = compactType(mimeType); err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	ref := &store.MediaRef{Type: mimeType, Name: filepath.Base(path)}
	if err := checkMediaMeta(ref); err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", op, path)
	}
	// The ciphertext goes to a file in the profile (client/transfer), so
	// that uploading it needs no memory, no second pass over a file that
	// might change meanwhile, and can resume after this process ends.
	c.media.Sweep()
	up, err := c.media.Prepare(src, transfer.UploadName(path, fi, to, mimeType))
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	defer up.Close()
	ref.Key, ref.SHA256, ref.PlainSHA256, ref.Size = up.Key(), up.SHA256(), up.PlainSHA256(), up.PlainSize()
	if u, err := identity.ParseUser(a.User); err == nil {
		ref.Server = u.Domain // receivers on other servers fetch it from here
	}
	if ref.ID, err = up.Send(ctx); err != nil {
		return "", err
	}
	id, err := c.enqueue(op, to, store.OutboxItem{Media: ref}, up.Forget)
	if err != nil {
		return "", err // the upload stays recorded: a retry queues it without uploading again
	}
	up.Remove()
	return id, nil
}

// MediaOf returns the media reference of a message this device holds in
// its history (sent or received); ErrNoMedia for a message without one,
// store.ErrNotFound for an unknown id.
func (c *Client) MediaOf(messageID string) (store.MediaRef, error) {
	var ref *store.MediaRef
	err := c.st.View(func(tx *store.Tx) error {
		for _, conv := range tx.HistoryConversations() {
			msgs, err := tx.History(conv, 0)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if m.ID == messageID {
					if m.Media == nil {
						return ErrNoMedia
					}
					ref = m.Media
					return nil
				}
			}
		}
		return store.ErrNotFound
	})
	if err != nil {
		return store.MediaRef{}, fmt.Errorf("client.MediaOf %s: %w", messageID, err)
	}
	return *ref, nil
}

// FetchMedia downloads the file ref refers to, checks its SHA-256 against
// the reference and writes the decrypted file to w. Nothing reaches w
// unless the whole ciphertext matched the hash; the ciphertext is held in
// a temporary file in the profile meanwhile (constant memory).
func (c *Client) FetchMedia(ctx context.Context, ref store.MediaRef, w io.Writer) error {
	if err := checkMediaRef(&ref); err != nil {
		return wire.E("client.FetchMedia", wire.Code_CODE_BAD_REQUEST, err)
	}
	return c.media.Fetch(ctx, ref, w)
}

// compactType checks a MIME type and writes it without spaces
// ("text/plain;charset=utf-8"), the form media references carry (what
// mime.TypeByExtension returns for .txt or .html has a space).
func compactType(t string) (string, error) {
	base, params, err := mime.ParseMediaType(t)
	if err != nil {
		return "", fmt.Errorf("bad MIME type %q: %w", t, err)
	}
	if !strings.Contains(base, "/") {
		return "", fmt.Errorf("bad MIME type %q: want TYPE/SUBTYPE", t)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(base)
	for _, k := range keys {
		v := params[k]
		if v == "" || strings.ContainsAny(v, " \t;\"\\") {
			return "", fmt.Errorf("bad MIME type %q: parameter %s", t, k)
		}
		b.WriteString(";" + k + "=" + v)
	}
	return b.String(), nil
}

// commonTypes are types of common files that systems without a MIME
// table (/etc/mime.types) would not know; mime.TypeByExtension comes first.
var commonTypes = map[string]string{
	".txt": "text/plain;charset=utf-8", ".text": "text/plain;charset=utf-8", ".log": "text/plain;charset=utf-8",
	".md": "text/markdown;charset=utf-8", ".csv": "text/csv;charset=utf-8", ".ics": "text/calendar",
	".zip": "application/zip", ".gz": "application/gzip", ".tar": "application/x-tar",
	".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".wav": "audio/wav", ".mp4": "video/mp4", ".webm": "video/webm",
	".odt": "application/vnd.oasis.opendocument.text", ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// guessType is the MIME type of a file by its name's extension,
// application/octet-stream when it is not known.
func guessType(path string) string {
	ext := strings.ToLower(filepath.Ext(path))
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	if t, ok := commonTypes[ext]; ok {
		return t
	}
	return "application/octet-stream"
}
