package homeserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"hearth/homeserver/wire"
	"hearth/keys/media"
	"hearth/storage"
)

// Media: resumable uploads and ranged downloads of encrypted files
// (wire.UploadMedia, wire.DownloadMedia). The server never sees plaintext:
// clients encrypt with keys/media and put the key in the E2EE message.
//
// Bytes live in files under MediaConfig.Dir: partial/UPLOAD_ID while the
// upload runs, complete/MEDIA_ID once done. The amount received is the
// partial file's size (no database write per chunk). Completing fsyncs the
// file, renames it into complete/ and fsyncs that folder before the row is
// marked complete, so a complete row always has its bytes; the SHA-256 the
// server answers lets the uploader check that what is stored is what it
// sent (a crash may lose the unsynced tail of a partial file; the size
// then says where to resume).
//
// Complete media are deleted MediaConfig.Retention after they completed
// (the janitor; default 30 days), so a user's quota counts what the server
// still holds. A message that refers to an expired media still decrypts;
// fetching its file answers CODE_NOT_FOUND.

// mediaStore is one Server's media state.
type mediaStore struct {
	s    *Server
	cfg  MediaConfig
	dir  string
	mu   sync.Mutex
	busy map[string]*uploadLock // per upload id, while a request or the janitor works on it
}

type uploadLock struct {
	mu   sync.Mutex
	refs int
}

// newMediaStore creates the media folders; New calls it.
func newMediaStore(s *Server) (*mediaStore, error) {
	const op = "homeserver.New"
	dir := s.cfg.Media.Dir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(s.db.Path()), "media")
	}
	for _, d := range []string{dir, filepath.Join(dir, "partial"), filepath.Join(dir, "complete")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, fmt.Errorf("media folder: %w", err))
		}
	}
	return &mediaStore{s: s, cfg: s.cfg.Media, dir: dir, busy: map[string]*uploadLock{}}, nil
}

func (m *mediaStore) partialPath(uploadID string) string {
	return filepath.Join(m.dir, "partial", uploadID)
}

func (m *mediaStore) completePath(mediaID string) string {
	return filepath.Join(m.dir, "complete", mediaID)
}

// lock serializes the work on one upload; the returned func unlocks.
func (m *mediaStore) lock(uploadID string) func() {
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

func (ss *session) uploadMedia(r *wire.UploadMedia) (*wire.ServerFrame, error) {
	m := ss.s.mediaSt
	var up *wire.UploadMediaOK
	var err error
	if r.GetUploadId() == "" {
		up, err = m.start(ss.ctx, ss.userID, ss.deviceID, r)
	} else {
		up, err = m.append(ss.ctx, ss.deviceID, r)
	}
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_UploadMedia{UploadMedia: up}}, nil
}

func (ss *session) downloadMedia(r *wire.DownloadMedia) (*wire.ServerFrame, error) {
	if srv := r.GetServer(); srv != "" && srv != ss.s.cfg.Domain {
		if ss.s.fed == nil {
			return nil, errFedOff
		}
		d, err := ss.s.fed.FetchMedia(ss.ctx, r)
		if err != nil {
			return nil, err
		}
		return &wire.ServerFrame{Body: &wire.ServerFrame_MediaData{MediaData: d}}, nil
	}
	m := ss.s.mediaSt
	d, err := m.Download(ss.ctx, r)
	if err != nil {
		return nil, err
	}
	return &wire.ServerFrame{Body: &wire.ServerFrame_MediaData{MediaData: d}}, nil
}

// start creates an upload (row first, then its empty file) and appends
// the request's data to it.
func (m *mediaStore) start(ctx context.Context, userID int64, deviceID string, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
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
	uploadID, err := randomText(m.s.rand, 16)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	mediaID, err := randomText(m.s.rand, 16)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	row := &storage.Media{UploadID: uploadID, MediaID: mediaID, UserID: userID, DeviceID: deviceID,
		TotalSize: int64(total), CreatedMs: m.s.nowMs()}
	err = m.s.db.Write(ctx, func(tx *storage.Tx) error {
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
	f, err := os.OpenFile(m.partialPath(uploadID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err) // the janitor removes the row
	}
	f.Close()
	return m.appendLocked(ctx, row, 0, r)
}

// append continues an upload of this device (or reports its state).
func (m *mediaStore) append(ctx context.Context, deviceID string, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
	const op = "homeserver.UploadMedia"
	if !media.ValidID(r.GetUploadId()) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such upload")
	}
	unlock := m.lock(r.GetUploadId())
	defer unlock()
	var row *storage.Media
	err := m.s.db.Read(ctx, func(tx *storage.Tx) (err error) { row, err = tx.MediaUpload(r.GetUploadId()); return })
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
	received, err := m.received(row)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	return m.appendLocked(ctx, row, received, r)
}

// received is how many bytes the upload holds: its partial file's size, or
// (after a crash between the rename and the database write) its complete
// file's.
func (m *mediaStore) received(row *storage.Media) (int64, error) {
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
func (m *mediaStore) checkData(r *wire.UploadMedia, received, total uint64) error {
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
func (m *mediaStore) appendLocked(ctx context.Context, row *storage.Media, received int64, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
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
	sum, err := m.finish(row)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	if err := m.s.db.Write(ctx, func(tx *storage.Tx) error { return tx.CompleteMedia(row.UploadID, sum, m.s.nowMs()) }); err != nil {
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
