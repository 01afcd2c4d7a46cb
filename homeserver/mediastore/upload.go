package mediastore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/media"
	"hearth/storage"
)

// Store holds one server's media: files under a folder, rows in the
// database.
type Store struct {
	db   *storage.DB
	log  *slog.Logger
	now  func() time.Time
	rand io.Reader
	cfg  Config
	dir  string
	mu   sync.Mutex
	busy map[string]*uploadLock // per upload id, while a request or the janitor works on it
	hold sync.RWMutex           // read-held to remove files; HoldFiles write-holds it during a backup

	// finishHook, when set (tests), runs in finish between hashing and
	// fsyncing the file: it stands for a slow disk.
	finishHook func(uploadID string)
}

type uploadLock struct {
	mu   sync.Mutex
	refs int
}

// Deps are the Store's collaborators; DB is required.
type Deps struct {
	DB   *storage.DB
	Log  *slog.Logger
	Now  func() time.Time
	Rand io.Reader // must be safe for concurrent use
}

// Open creates the media folders (cfg.Dir, default "media" beside the
// database file) and returns the Store. cfg must have its defaults
// (Config.WithDefaults).
func Open(cfg Config, deps Deps) (*Store, error) {
	const op = "homeserver.New"
	dir := cfg.Dir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(deps.DB.Path()), "media")
	}
	for _, d := range []string{dir, filepath.Join(dir, "partial"), filepath.Join(dir, "complete")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, fmt.Errorf("media folder: %w", err))
		}
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Store{db: deps.DB, log: deps.Log, now: deps.Now, rand: deps.Rand, cfg: cfg, dir: dir, busy: map[string]*uploadLock{}}, nil
}

func (m *Store) partialPath(uploadID string) string {
	return filepath.Join(m.dir, "partial", uploadID)
}

func (m *Store) completePath(mediaID string) string {
	return filepath.Join(m.dir, "complete", mediaID)
}

// lock serializes the work on one upload; the returned func unlocks.
func (m *Store) lock(uploadID string) func() {
	m.mu.Lock()
	l := m.busy[uploadID]
	if l == nil {
		l = &uploadLock{}
		m.busy[uploadID] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.busy, uploadID)
		}
		m.mu.Unlock()
	}
}

// Start creates an upload (row first, then its empty file) and appends
// the request's data to it.
func (m *Store) Start(ctx context.Context, userID int64, deviceID string, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
	const op = "homeserver.UploadMedia"
	total := r.GetTotalSize()
	switch {
	case total == 0:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a new upload needs total_size")
	case total > uint64(m.cfg.MaxBytes):
		return nil, wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "%d bytes is over the server's media limit of %d", total, m.cfg.MaxBytes)
	case r.GetOffset() != 0:
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a new upload starts at offset 0")
	}
	if err := m.checkData(r, 0, total); err != nil {
		return nil, err
	}
	uploadID, err := randomText(m.rand, 16)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	mediaID, err := randomText(m.rand, 16)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	row := &storage.Media{UploadID: uploadID, MediaID: mediaID, UserID: userID, DeviceID: deviceID,
		TotalSize: int64(total), CreatedMs: m.now().UnixMilli()}
	err = m.db.Write(ctx, func(tx *storage.Tx) error {
		n, err := tx.OpenMediaUploads(deviceID)
		if err != nil {
			return err
		}
		if n >= m.cfg.MaxOpen {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "%d uploads already in progress on this device", n)
		}
		if m.cfg.Quota > 0 {
			used, err := tx.MediaBytes(userID)
			if err != nil {
				return err
			}
			if used+row.TotalSize > m.cfg.Quota {
				return wire.Errorf(op, wire.Code_CODE_LIMIT, "media quota: %d of %d bytes used, %d more do not fit", used, m.cfg.Quota, total)
			}
		}
		return tx.InsertMedia(row)
	})
	if err != nil {
		return nil, mediaErr(op, err)
	}
	unlock := m.lock(uploadID)
	defer unlock()
	if r.GetParts() {
		if err := os.Mkdir(m.partialPath(uploadID), 0o700); err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, err) // the janitor removes the row
		}
		return m.appendParts(ctx, row, r) // parts.go
	}
	f, err := os.OpenFile(m.partialPath(uploadID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err) // the janitor removes the row
	}
	f.Close()
	return m.appendLocked(ctx, row, 0, r)
}

// Append continues an upload of this device (or reports its state).
func (m *Store) Append(ctx context.Context, deviceID string, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
	const op = "homeserver.UploadMedia"
	if !media.ValidID(r.GetUploadId()) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such upload")
	}
	unlock := m.lock(r.GetUploadId())
	defer unlock()
	var row *storage.Media
	err := m.db.Read(ctx, func(tx *storage.Tx) (err error) { row, err = tx.MediaUpload(r.GetUploadId()); return })
	if err == nil && row.DeviceID != deviceID {
		err = storage.ErrNotFound // another device's upload id is as good as unknown
	}
	if err != nil {
		return nil, mediaErr(op, err)
	}
	if r.GetTotalSize() != 0 && r.GetTotalSize() != uint64(row.TotalSize) {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "total_size %d differs from the upload's %d", r.GetTotalSize(), row.TotalSize)
	}
	if row.Complete() {
		if len(r.GetData()) > 0 {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "upload already complete")
		}
		return completeOK(row), nil
	}
	if m.inParts(row.UploadID) {
		return m.appendParts(ctx, row, r) // parts.go
	}
	received, err := m.received(row)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	return m.appendLocked(ctx, row, received, r)
}

// received is how many bytes the upload holds: its partial file's size, or
// (after a crash between the rename and the database write) its complete
// file's.
func (m *Store) received(row *storage.Media) (int64, error) {
	fi, err := os.Stat(m.partialPath(row.UploadID))
	if errors.Is(err, os.ErrNotExist) {
		fi, err = os.Stat(m.completePath(row.MediaID))
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// checkData validates the data of r against what the upload holds.
func (m *Store) checkData(r *wire.UploadMedia, received, total uint64) error {
	const op = "homeserver.UploadMedia"
	n := uint64(len(r.GetData()))
	switch {
	case n > uint64(m.cfg.MaxChunkBytes):
		return wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "%d bytes of data; at most %d per request", n, m.cfg.MaxChunkBytes)
	case r.GetOffset() != received:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "offset %d, but the server holds %d bytes of this upload", r.GetOffset(), received)
	case received+n > total:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "data would end at %d, past total_size %d", received+n, total)
	case r.GetFinal() && received+n != total:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "final, but the upload would hold %d of %d bytes", received+n, total)
	}
	return nil
}

// appendLocked writes r's data at received and completes the upload if r
// is final. The caller holds the upload's lock.
func (m *Store) appendLocked(ctx context.Context, row *storage.Media, received int64, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
	const op = "homeserver.UploadMedia"
	data := r.GetData()
	if len(data) == 0 && !r.GetFinal() {
		// A status request: where to resume.
		return &wire.UploadMediaOK{UploadId: row.UploadID, Received: uint64(received), TotalSize: uint64(row.TotalSize)}, nil
	}
	if err := m.checkData(r, uint64(received), uint64(row.TotalSize)); err != nil {
		return nil, err
	}
	if len(data) > 0 {
		if err := writeAt(m.partialPath(row.UploadID), data, received); err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
		}
		received += int64(len(data))
	}
	if !r.GetFinal() {
		return &wire.UploadMediaOK{UploadId: row.UploadID, Received: uint64(received), TotalSize: uint64(row.TotalSize)}, nil
	}
	// The file work runs here, outside the database writer (see doc.go):
	// the write transaction only records its result.
	sum, err := m.finish(row)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	if err := m.db.Write(ctx, func(tx *storage.Tx) error { return tx.CompleteMedia(row.UploadID, sum, m.now().UnixMilli()) }); err != nil {
		return nil, mediaErr(op, err)
	}
	row.SHA256 = sum
	return completeOK(row), nil
}

// writeAt writes data at off of the file at path, which must exist; on a
// failure the file is cut back to off so that nothing changed.
func writeAt(path string, data []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Truncate(off)
		f.Close()
		return err
	}
	return f.Close()
}

func completeOK(row *storage.Media) *wire.UploadMediaOK {
	return &wire.UploadMediaOK{UploadId: row.UploadID, Received: uint64(row.TotalSize), TotalSize: uint64(row.TotalSize),
		MediaId: row.MediaID, Sha256: row.SHA256}
}

// mediaErr maps storage errors to wire codes; wire errors pass through.
func mediaErr(op string, err error) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return err
	case errors.Is(err, storage.ErrNotFound):
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such upload or media")
	case errors.Is(err, storage.ErrClosed):
		return wire.E(op, wire.Code_CODE_UNAVAILABLE, err)
	}
	return wire.E(op, wire.Code_CODE_INTERNAL, fmt.Errorf("media: %w", err))
}

func randomText(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
