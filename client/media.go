package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/media"
)

// uploadChunk is the ciphertext sent per UploadMedia request (the
// homeserver's default per-request limit).
const uploadChunk = 256 << 10

// minUploadChunk is as small as requests get when a server refuses larger
// ones (a homeserver with a small frame limit).
const minUploadChunk = 8 << 10

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
	a, err := c.Account()
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
		if mimeType = mime.TypeByExtension(filepath.Ext(path)); mimeType == "" {
			mimeType = "application/octet-stream"
		}
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
	// The ciphertext goes to a file in the profile (media_resume.go), so
	// that uploading it needs no memory, no second pass over a file that
	// might change meanwhile, and can resume after this process ends.
	c.sweepUploads()
	name := pendingName(path, fi, to, mimeType)
	p, tmp := c.loadPending(name)
	if p == nil {
		if p, tmp, err = c.sealFile(src, name); err != nil {
			return "", fmt.Errorf("%s: %w", op, err)
		}
	}
	defer tmp.Close()
	sealed, err := p.sealed()
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	ref.Key, ref.SHA256, ref.Size = p.Key, p.SHA256, p.PlainSize
	if u, err := identity.ParseUser(a.User); err == nil {
		ref.Server = u.Domain // receivers on other servers fetch it from here
	}
	ref.ID, err = c.upload(ctx, tmp, sealed, p.UploadID, func(id string) error {
		p.UploadID = id
		return c.savePending(name, p)
	})
	if err != nil {
		if !resumable(err) {
			c.dropPending(name, p)
		}
		return "", err
	}
	id, err := c.enqueue(op, to, store.OutboxItem{Media: ref}, func(tx *store.Tx) error { return tx.DeleteMeta(name) })
	if err != nil {
		return "", err // the upload stays recorded: a retry queues it without uploading again
	}
	os.Remove(filepath.Join(c.cfg.Profile, p.Tmp))
	return id, nil
}

// upload sends the ciphertext in f to the homeserver and returns its media
// id. A request cut off by a lost connection is followed, once the session
// is back, by a status request; the upload goes on from what the server
// holds. The server's SHA-256 of what it stored must match ours.
//
// uploadID, if not empty, is an upload an earlier run started: it goes on
// from what the server holds of it (or starts over if the server dropped
// it). saveID is told every new upload id before data is sent to it.
func (c *Client) upload(ctx context.Context, f io.ReaderAt, sealed media.Sealed, uploadID string, saveID func(string) error) (string, error) {
	const op = "client.upload"
	total := uint64(sealed.Size)
	buf := make([]byte, uploadChunk)
	var off uint64
	if uploadID != "" {
		r, err := c.uploadStatus(ctx, uploadID)
		switch {
		case wire.Is(err, wire.Code_CODE_NOT_FOUND):
			uploadID = "" // expired on the server: start over
		case err != nil:
			return "", err
		default:
			off = r.GetUploadMedia().GetReceived()
			if id := r.GetUploadMedia().GetMediaId(); id != "" {
				return checkUploaded(r.GetUploadMedia(), sealed)
			}
		}
	}
	for {
		var req *wire.UploadMedia
		if uploadID == "" {
			// Start without data: a refusal (size, quota) then costs
			// nothing, and a later TOO_LARGE can only be about the chunk.
			req = &wire.UploadMedia{TotalSize: total}
		} else {
			n := min(uint64(len(buf)), total-off)
			if _, err := f.ReadAt(buf[:n], int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
				return "", fmt.Errorf("%s: read ciphertext: %w", op, err)
			}
			req = &wire.UploadMedia{UploadId: uploadID, Offset: off, Data: buf[:n], Final: off+n == total}
		}
		r, err := c.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: req}})
		if err != nil {
			if uploadID != "" && wire.Is(err, wire.Code_CODE_TOO_LARGE) && len(buf) > minUploadChunk {
				buf = buf[:len(buf)/2] // the server takes smaller requests
				continue
			}
			if !errors.Is(err, ErrDisconnected) || ctx.Err() != nil {
				return "", err
			}
			if uploadID == "" {
				continue // the start may have been lost: start again (the server drops the orphan)
			}
			if r, err = c.uploadStatus(ctx, uploadID); err != nil {
				return "", err
			}
			c.log.Debug("upload resumed", "offset", r.GetUploadMedia().GetReceived())
		}
		up := r.GetUploadMedia()
		if up == nil {
			return "", fmt.Errorf("%s: unexpected answer %T", op, r.GetBody())
		}
		if uploadID == "" {
			if err := saveID(up.GetUploadId()); err != nil {
				return "", fmt.Errorf("%s: %w", op, err)
			}
		}
		uploadID, off = up.GetUploadId(), up.GetReceived()
		if up.GetMediaId() != "" {
			return checkUploaded(up, sealed)
		}
		if off > total {
			return "", fmt.Errorf("%s: the server holds %d of %d bytes", op, off, total)
		}
	}
}

// checkUploaded checks a completed upload's answer: the server must hold
// exactly our bytes under a well-formed id.
func checkUploaded(up *wire.UploadMediaOK, sealed media.Sealed) (string, error) {
	if !bytes.Equal(up.GetSha256(), sealed.SHA256[:]) {
		return "", fmt.Errorf("client.upload: the server stored different bytes (SHA-256 %x, sent %x)", up.GetSha256(), sealed.SHA256)
	}
	if !media.ValidID(up.GetMediaId()) {
		return "", fmt.Errorf("client.upload: the server answered a malformed media id")
	}
	return up.GetMediaId(), nil
}

// uploadStatus asks how much of an upload the server holds (retried
// across reconnects: it changes nothing).
func (c *Client) uploadStatus(ctx context.Context, uploadID string) (*wire.ServerFrame, error) {
	return c.callIdempotent(ctx, "client.upload", &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{
		UploadMedia: &wire.UploadMedia{UploadId: uploadID}}})
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
	const op = "client.FetchMedia"
	if err := checkMediaRef(&ref); err != nil {
		return wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	key, err := media.ParseKey(ref.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	want := media.SealedSize(ref.Size)
	tmp, err := os.CreateTemp(c.cfg.Profile, ".download-*")
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	hw := media.NewHashWriter(tmp)
	if err := c.download(ctx, ref.ID, ref.Server, want, hw); err != nil {
		return err
	}
	if sum := hw.Sum(); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return fmt.Errorf("%s: downloaded file does not match the message's SHA-256", op)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := media.Decrypt(w, tmp, key)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n != ref.Size {
		return fmt.Errorf("%s: decrypted %d bytes, the message says %d", op, n, ref.Size)
	}
	return nil
}

// download writes the want bytes of a media to w, range by range; ranges
// cut off by a lost connection are asked for again. A media of another
// server is fetched through this device's server.
func (c *Client) download(ctx context.Context, mediaID, server string, want int64, w io.Writer) error {
	const op = "client.download"
	var off int64
	for off < want {
		r, err := c.callIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{
			DownloadMedia: &wire.DownloadMedia{MediaId: mediaID, Offset: uint64(off), Server: server}}})
		if err != nil {
			return err
		}
		d := r.GetMediaData()
		if d == nil || d.GetOffset() != uint64(off) {
			return fmt.Errorf("%s: unexpected answer", op)
		}
		if d.GetTotalSize() != uint64(want) {
			return fmt.Errorf("%s: the server holds %d bytes, the message says %d", op, d.GetTotalSize(), want)
		}
		if len(d.GetData()) == 0 {
			return fmt.Errorf("%s: the server's file ended at %d of %d bytes", op, off, want)
		}
		if _, err := w.Write(d.GetData()); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		off += int64(len(d.GetData()))
		if off > want {
			return fmt.Errorf("%s: the server sent more than %d bytes", op, want)
		}
	}
	return nil
}
