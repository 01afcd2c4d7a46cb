package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/keys/media"
)

// A file upload survives its process: the ciphertext stays in the profile
// folder and the store remembers it (under UploadName of the file, its
// size and modification time, the recipient and the type), so sending the
// same file to the same recipient again resumes the upload where the
// server has it instead of starting over. The record and the ciphertext
// go once the message is queued, or when the upload fails for a reason a
// retry would not fix.

// pendingUpload is the stored state of an unfinished upload.
type pendingUpload struct {
	Tmp       string `json:"tmp"` // ciphertext file name in the profile folder
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	PlainSize int64  `json:"plain_size"`
	SHA256    string `json:"sha256"` // of the ciphertext, hex
	// PlainSHA256 is the SHA-256 of the file, hex (empty in records
	// from before it was kept: Prepare hashes the file then).
	PlainSHA256 string `json:"plain_sha256,omitempty"`
	UploadID    string `json:"upload_id,omitempty"`
}

func (p *pendingUpload) sealed() (media.Sealed, error) {
	s := media.Sealed{Size: p.Size, PlainSize: p.PlainSize}
	h, err := hex.DecodeString(p.SHA256)
	if err != nil || len(h) != 32 {
		return s, fmt.Errorf("client: pending upload: bad sha256")
	}
	copy(s.SHA256[:], h)
	return s, nil
}

// UploadName names the record of an upload of the file at path (as it is
// now) to to with type mimeType.
func UploadName(path string, fi os.FileInfo, to, mimeType string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%s\x00%s", abs, fi.Size(), fi.ModTime().UnixNano(), to, mimeType))
	return "media-upload/" + hex.EncodeToString(h[:16])
}

// loadPending returns the recorded upload and its open ciphertext file,
// or nil if there is none usable (a record whose file is gone or has the
// wrong size is dropped).
func (t *Transfer) loadPending(name string) (*pendingUpload, *os.File) {
	var raw []byte
	t.cfg.Store.View(func(tx *store.Tx) error { raw = tx.Meta(name); return nil })
	if raw == nil {
		return nil, nil
	}
	p := &pendingUpload{}
	if err := json.Unmarshal(raw, p); err == nil && p.Tmp == filepath.Base(p.Tmp) {
		if f, err := os.Open(filepath.Join(t.cfg.Dir, p.Tmp)); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() == p.Size {
				if _, err := p.sealed(); err == nil {
					return p, f
				}
			}
			f.Close()
		}
	}
	t.dropPending(name, p)
	return nil, nil
}

func (t *Transfer) savePending(name string, p *pendingUpload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return t.cfg.Store.Update(func(tx *store.Tx) error { return tx.PutMeta(name, b) })
}

// dropPending forgets a recorded upload and removes its ciphertext.
func (t *Transfer) dropPending(name string, p *pendingUpload) {
	if err := t.cfg.Store.Update(func(tx *store.Tx) error { return tx.DeleteMeta(name) }); err != nil {
		t.cfg.Log.Warn("forgetting an upload failed", "err", err)
	}
	if p != nil && p.Tmp != "" && p.Tmp == filepath.Base(p.Tmp) {
		os.Remove(filepath.Join(t.cfg.Dir, p.Tmp))
	}
}

// sealFile encrypts src under a fresh key into a ciphertext file in the
// profile folder, made durable, and records the upload under name.
func (t *Transfer) sealFile(src *os.File, name string) (*pendingUpload, *os.File, error) {
	key, err := media.NewKey(t.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(t.cfg.Dir, ".upload-*")
	if err != nil {
		return nil, nil, err
	}
	p := &pendingUpload{Tmp: filepath.Base(tmp.Name()), Key: key.Text()}
	fail := func(err error) (*pendingUpload, *os.File, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, nil, err
	}
	plain := sha256.New()
	sealed, err := media.Encrypt(tmp, io.TeeReader(src, plain), key, t.cfg.Rand)
	if err != nil {
		return fail(err)
	}
	p.PlainSHA256 = hex.EncodeToString(plain.Sum(nil))
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	p.Size, p.PlainSize, p.SHA256 = sealed.Size, sealed.PlainSize, hex.EncodeToString(sealed.SHA256[:])
	if err := t.savePending(name, p); err != nil {
		return fail(err)
	}
	return p, tmp, nil
}

// resumable reports whether an upload that failed with err should be kept
// for the next attempt: the connection or the context ended, or the
// server asked to retry.
func resumable(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || session.Retryable(err)
}

// staleUpload is how long a ciphertext kept for resuming waits for its
// retry before Sweep removes it (the server drops an unfinished
// upload after a day by default).
const staleUpload = 7 * 24 * time.Hour

// Sweep removes ciphertexts of uploads nobody retried for
// staleUpload, and downloads a killed run left behind; the records of
// removed uploads are dropped when next looked up.
func (t *Transfer) Sweep() {
	now := t.cfg.Now()
	for pattern, age := range map[string]time.Duration{".upload-*": staleUpload, ".download-*": 24 * time.Hour} {
		names, _ := filepath.Glob(filepath.Join(t.cfg.Dir, pattern))
		for _, n := range names {
			if fi, err := os.Stat(n); err == nil && now.Sub(fi.ModTime()) > age {
				os.Remove(n)
			}
		}
	}
}

// Upload is a file's upload, ready to send: its ciphertext is in the
// profile folder and recorded in the store.
type Upload struct {
	t    *Transfer
	name string
	p    *pendingUpload
	f    *os.File
	s    media.Sealed
}

// Prepare returns the upload recorded under name (UploadName) if there is
// a usable one, or encrypts src under a fresh key and records it.
func (t *Transfer) Prepare(src *os.File, name string) (*Upload, error) {
	p, f := t.loadPending(name)
	if p == nil {
		var err error
		if p, f, err = t.sealFile(src, name); err != nil {
			return nil, err
		}
	}
	s, err := p.sealed()
	if err != nil {
		f.Close()
		return nil, err
	}
	if p.PlainSHA256 == "" {
		if p.PlainSHA256, err = hashFile(src); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &Upload{t: t, name: name, p: p, f: f, s: s}, nil
}

// Key, SHA256, PlainSHA256 and PlainSize describe the upload for a media
// reference.
func (u *Upload) Key() string         { return u.p.Key }
func (u *Upload) SHA256() string      { return u.p.SHA256 }
func (u *Upload) PlainSHA256() string { return u.p.PlainSHA256 }
func (u *Upload) PlainSize() int64    { return u.p.PlainSize }

// hashFile is the SHA-256 of src from its start, hex.
func hashFile(src *os.File) (string, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, src); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Send uploads the ciphertext, going on from what the server holds of an
// earlier run's upload, and returns the media id. An upload that failed
// for a reason a retry would not fix is forgotten.
func (u *Upload) Send(ctx context.Context) (string, error) {
	id, err := u.t.upload(ctx, u.f, u.s, u.p.UploadID, func(id string) error {
		u.p.UploadID = id
		return u.t.savePending(u.name, u.p)
	})
	if err != nil && !resumable(err) {
		u.t.dropPending(u.name, u.p)
	}
	return id, err
}

// Forget drops the upload's record in tx (the transaction that queues the
// message referring to it).
func (u *Upload) Forget(tx *store.Tx) error { return tx.DeleteMeta(u.name) }

// Remove removes the ciphertext once the upload is forgotten.
func (u *Upload) Remove() { os.Remove(filepath.Join(u.t.cfg.Dir, u.p.Tmp)) }

// Close closes the ciphertext file.
func (u *Upload) Close() error { return u.f.Close() }
