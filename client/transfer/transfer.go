package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/media"
)

// uploadChunk is the ciphertext sent per UploadMedia request (the
// homeserver's default per-request limit).
const uploadChunk = 256 << 10

// minUploadChunk is as small as requests get when a server refuses larger
// ones (a homeserver with a small frame limit).
const minUploadChunk = 8 << 10

// CallFunc sends one request over the device's session.
type CallFunc func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)

// Config is what a Transfer needs.
type Config struct {
	Dir   string       // the profile folder: ciphertexts of unfinished transfers
	Store *store.Store // records of unfinished uploads
	// Call sends a request; CallIdempotent sends it again once the session
	// is back when a lost connection cut it off.
	Call, CallIdempotent CallFunc
	Rand                 io.Reader // media keys and nonces
	Now                  func() time.Time
	Log                  *slog.Logger
	// OpenLane opens one more connection of the device for a transfer
	// (parallel.go); nil: transfers use the session's only.
	OpenLane func(ctx context.Context) (Lane, error)
	// Connections is the most connections one transfer of at least
	// ParallelMin ciphertext bytes uses, the session's included; 1 or
	// less: one.
	Connections int
	ParallelMin int64 // default DefaultParallelMin
}

// ErrCorrupt is wrapped when a downloaded media does not match its
// reference (hash, size, decryption): fetching it again would not help.
var ErrCorrupt = errors.New("media does not match its reference")

// Transfer moves one device's encrypted media to and from its homeserver.
type Transfer struct{ cfg Config }

// New returns a Transfer.
func New(cfg Config) *Transfer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ParallelMin <= 0 {
		cfg.ParallelMin = DefaultParallelMin
	}
	return &Transfer{cfg: cfg}
}

// upload sends the ciphertext in f to the homeserver and returns its media
// id. A request cut off by a lost connection is followed, once the session
// is back, by a status request; the upload goes on from what the server
// holds. The server's SHA-256 of what it stored must match ours.
//
// uploadID, if not empty, is an upload an earlier run started: it goes on
// from what the server holds of it (or starts over if the server dropped
// it). saveID is told every new upload id before data is sent to it.
func (t *Transfer) upload(ctx context.Context, f io.ReaderAt, sealed media.Sealed, uploadID string, saveID func(string) error) (string, error) {
	const op = "client.upload"
	total := uint64(sealed.Size)
	buf := make([]byte, uploadChunk)
	var off uint64
	if uploadID != "" {
		r, err := t.uploadStatus(ctx, uploadID)
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
			if r.GetUploadMedia().GetPartSize() > 0 {
				return t.uploadParts(ctx, f, sealed, r.GetUploadMedia()) // parallel.go
			}
		}
	}
	parts := uploadID == "" && t.parallel(sealed.Size) > 1
	for {
		var req *wire.UploadMedia
		if uploadID == "" {
			// Start without data: a refusal (size, quota) then costs
			// nothing, and a later TOO_LARGE can only be about the chunk.
			req = &wire.UploadMedia{TotalSize: total, Parts: parts}
		} else {
			n := min(uint64(len(buf)), total-off)
			if _, err := f.ReadAt(buf[:n], int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
				return "", fmt.Errorf("%s: read ciphertext: %w", op, err)
			}
			req = &wire.UploadMedia{UploadId: uploadID, Offset: off, Data: buf[:n], Final: off+n == total}
		}
		r, err := t.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: req}})
		if err != nil {
			if uploadID != "" && wire.Is(err, wire.Code_CODE_TOO_LARGE) && len(buf) > minUploadChunk {
				buf = buf[:len(buf)/2] // the server takes smaller requests
				continue
			}
			if !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
				return "", err
			}
			if uploadID == "" {
				continue // the start may have been lost: start again (the server drops the orphan)
			}
			if r, err = t.uploadStatus(ctx, uploadID); err != nil {
				return "", err
			}
			t.cfg.Log.Debug("upload resumed", "offset", r.GetUploadMedia().GetReceived())
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
		if up.GetPartSize() > 0 {
			return t.uploadParts(ctx, f, sealed, up) // parallel.go
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
func (t *Transfer) uploadStatus(ctx context.Context, uploadID string) (*wire.ServerFrame, error) {
	return t.cfg.CallIdempotent(ctx, "client.upload", &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{
		UploadMedia: &wire.UploadMedia{UploadId: uploadID}}})
}

// Fetch downloads the media ref refers to (checked by the caller), checks
// its SHA-256 against the reference and writes the decrypted file to w.
// Nothing reaches w unless the whole ciphertext matched the hash; the
// ciphertext is held in a temporary file in Dir meanwhile.
func (t *Transfer) Fetch(ctx context.Context, ref store.MediaRef, w io.Writer) error {
	return t.FetchProgress(ctx, ref, w, nil)
}

// FetchProgress is Fetch that tells progress, when not nil, the
// ciphertext bytes downloaded so far and their total.
func (t *Transfer) FetchProgress(ctx context.Context, ref store.MediaRef, w io.Writer, progress func(done, total int64)) error {
	const op = "client.FetchMedia"
	key, err := media.ParseKey(ref.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	want := media.SealedSize(ref.Size)
	tmp, cleanup, err := scratchFile(t.cfg.Dir, ".download-*")
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer cleanup()
	hw := media.NewHashWriter(tmp)
	var dst io.Writer = hw
	if progress != nil {
		dst = &progressWriter{w: hw, total: want, fn: progress}
	}
	if err := t.download(ctx, ref.ID, ref.Server, want, dst); err != nil {
		return err
	}
	if sum := hw.Sum(); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return fmt.Errorf("%s: %w: downloaded file does not match the message's SHA-256", op, ErrCorrupt)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	plain := sha256.New()
	pw := &errWriter{w: w}
	n, err := media.Decrypt(io.MultiWriter(pw, plain), tmp, key)
	if err != nil && pw.err == nil {
		return fmt.Errorf("%s: %w: %w", op, ErrCorrupt, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err) // w refused the data
	}
	if n != ref.Size {
		return fmt.Errorf("%s: %w: decrypted %d bytes, the message says %d", op, ErrCorrupt, n, ref.Size)
	}
	if ref.PlainSHA256 != "" && hex.EncodeToString(plain.Sum(nil)) != ref.PlainSHA256 {
		return fmt.Errorf("%s: %w: the decrypted file does not match the message's SHA-256", op, ErrCorrupt)
	}
	return nil
}

// download writes the want bytes of a media to w, range by range; ranges
// cut off by a lost connection are asked for again. A media of another
// server is fetched through this device's server.
func (t *Transfer) download(ctx context.Context, mediaID, server string, want int64, w io.Writer) error {
	const op = "client.download"
	if n := t.parallel(want); n > 1 {
		return t.downloadParallel(ctx, mediaID, server, want, w, n) // parallel.go
	}
	var off int64
	for off < want {
		r, err := t.cfg.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{
			DownloadMedia: &wire.DownloadMedia{MediaId: mediaID, Offset: uint64(off), Server: server}}})
		if err != nil {
			return err
		}
		d := r.GetMediaData()
		if d == nil || d.GetOffset() != uint64(off) {
			return fmt.Errorf("%s: unexpected answer", op)
		}
		if d.GetTotalSize() != uint64(want) {
			return fmt.Errorf("%s: %w: the server holds %d bytes, the message says %d", op, ErrCorrupt, d.GetTotalSize(), want)
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

// errWriter remembers the error its writer returned, so that a failed
// write is told apart from a decryption failure.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// progressWriter tells fn the bytes written through it so far.
type progressWriter struct {
	w     io.Writer
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.fn(p.done, p.total)
	return n, err
}

// progressReaderAt tells fn the furthest offset read through it, or,
// once counting (an upload in parts), the bytes read (at most total).
type progressReaderAt struct {
	r        io.ReaderAt
	mu       sync.Mutex
	done     int64
	total    int64
	counting bool
	fn       func(done, total int64)
}

// countFrom makes p count bytes read from now on, from done.
func (p *progressReaderAt) countFrom(done int64) {
	p.mu.Lock()
	p.counting, p.done = true, done
	p.mu.Unlock()
}

func (p *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counting {
		p.done = min(p.done+int64(n), p.total)
		p.fn(p.done, p.total)
	} else if end := off + int64(n); end > p.done {
		p.done = end
		p.fn(p.done, p.total)
	}
	return n, err
}
