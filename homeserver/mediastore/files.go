package mediastore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/media"
	"hearth/storage"
)

// finish makes an upload's bytes durable under complete/ and returns
// their SHA-256: fsync the file, rename it, fsync the folder. It is safe to
// run again after a crash at any point (the file is then already there).
func (m *Store) finish(row *storage.Media) ([]byte, error) {
	partial, complete := m.partialPath(row.UploadID), m.completePath(row.MediaID)
	src := partial
	if _, err := os.Stat(partial); errors.Is(err, os.ErrNotExist) {
		src = complete // renamed before a crash; the row was not updated
	}
	f, err := os.OpenFile(src, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("media finish: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("media finish: hash: %w", err)
	}
	if n != row.TotalSize {
		return nil, fmt.Errorf("media finish: file holds %d bytes, upload declared %d", n, row.TotalSize)
	}
	if m.finishHook != nil {
		m.finishHook(row.UploadID)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("media finish: fsync: %w", err)
	}
	if src == partial {
		if err := os.Rename(partial, complete); err != nil {
			return nil, fmt.Errorf("media finish: %w", err)
		}
	}
	if err := syncDir(filepath.Dir(complete)); err != nil {
		return nil, fmt.Errorf("media finish: %w", err)
	}
	return h.Sum(nil), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Download reads a range of a complete media.
func (m *Store) Download(ctx context.Context, r *wire.DownloadMedia) (*wire.MediaData, error) {
	const op = "homeserver.DownloadMedia"
	if !media.ValidID(r.GetMediaId()) {
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
	}
	var row *storage.Media
	err := m.db.Read(ctx, func(tx *storage.Tx) (err error) { row, err = tx.CompleteMediaByID(r.GetMediaId()); return })
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no such media")
		}
		return nil, mediaErr(op, err)
	}
	total := uint64(row.TotalSize)
	if r.GetOffset() > total {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "offset %d is past the end (%d bytes)", r.GetOffset(), total)
	}
	n := uint64(m.cfg.MaxChunkBytes)
	if l := r.GetLength(); l > 0 && l < n {
		n = l
	}
	n = min(n, total-r.GetOffset())
	buf := make([]byte, n)
	if n > 0 {
		f, err := os.Open(m.completePath(row.MediaID))
		if err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
		}
		_, err = f.ReadAt(buf, int64(r.GetOffset()))
		f.Close()
		if err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, fmt.Errorf("read media: %w", err))
		}
	}
	return &wire.MediaData{Data: buf, TotalSize: total, Offset: r.GetOffset()}, nil
}

// JanitorLoop runs RunJanitor every JanitorEvery until stop is closed.
func (m *Store) JanitorLoop(stop <-chan struct{}) {
	var tick <-chan time.Time
	if m.cfg.JanitorEvery > 0 {
		t := time.NewTicker(m.cfg.JanitorEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-tick:
			if _, err := m.RunJanitor(context.Background()); err != nil {
				m.log.Error("media janitor", "err", err)
			}
		}
	}
}

// RunJanitor deletes complete media older than Config.Retention
// and uploads that did not complete within Config.UploadTimeout of
// their start, then removes the files of every
// deleted upload (abandoned ones, and those of deleted users: a trigger
// records each deleted row, so a crash in between loses nothing). It
// returns how many abandoned uploads it removed. The loop calls it; tests
// call it with their clock.
func (m *Store) RunJanitor(ctx context.Context) (int, error) {
	const op = "homeserver.RunMediaJanitor"
	const batch = 100
	if m.cfg.Retention > 0 {
		expired, err := m.expire(ctx, m.now().Add(-m.cfg.Retention).UnixMilli())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		if expired > 0 {
			m.log.Info("media expired", "count", expired, "retention", m.cfg.Retention)
		}
	}
	cutoff := m.now().Add(-m.cfg.UploadTimeout).UnixMilli()
	removed := 0
	for {
		var stale []*storage.Media
		if err := m.db.Read(ctx, func(tx *storage.Tx) (err error) { stale, err = tx.StaleMediaUploads(cutoff, batch); return }); err != nil {
			return removed, fmt.Errorf("%s: %w", op, err)
		}
		for _, row := range stale {
			ok, err := m.abandon(ctx, row.UploadID)
			if err != nil {
				return removed, fmt.Errorf("%s: %w", op, err)
			}
			if ok {
				removed++
			}
		}
		if len(stale) < batch {
			break
		}
	}
	for {
		var gone []storage.Media
		if err := m.db.Read(ctx, func(tx *storage.Tx) (err error) { gone, err = tx.GoneMedia(batch); return }); err != nil {
			return removed, fmt.Errorf("%s: %w", op, err)
		}
		for _, g := range gone {
			if err := m.removeFiles(ctx, g); err != nil {
				return removed, fmt.Errorf("%s: %w", op, err)
			}
		}
		if len(gone) < batch {
			return removed, nil
		}
	}
}

// abandon deletes an incomplete upload's row (its files go with the gone
// records); false if it completed or went meanwhile.
func (m *Store) abandon(ctx context.Context, uploadID string) (bool, error) {
	unlock := m.lock(uploadID)
	defer unlock()
	err := m.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteIncompleteMedia(uploadID) })
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// removeFiles removes a deleted upload's files, then its gone record.
func (m *Store) removeFiles(ctx context.Context, g storage.Media) error {
	unlock := m.lock(g.UploadID)
	defer unlock()
	m.hold.RLock() // not while a backup holds the files (HoldFiles)
	defer m.hold.RUnlock()
	// partial/UPLOAD_ID is a folder for an upload in parts (parts.go).
	for _, p := range []string{m.partialPath(g.UploadID), m.partialPath(g.UploadID) + ".join", m.completePath(g.MediaID)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return m.db.Write(ctx, func(tx *storage.Tx) error { return tx.ForgetGoneMedia(g.UploadID) })
}

// expire deletes the rows of media completed before beforeMs (their
// files go with the gone records) and returns how many.
func (m *Store) expire(ctx context.Context, beforeMs int64) (int64, error) {
	const batch = 500
	var total int64
	for {
		var n int64
		err := m.db.Write(ctx, func(tx *storage.Tx) (err error) { n, err = tx.DeleteCompleteMediaBefore(beforeMs, batch); return err })
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// HoldFiles keeps every media file in place (the janitor waits before
// removing any) until release is called: a backup copies the files of the
// media its database snapshot lists.
func (m *Store) HoldFiles() (release func()) {
	m.hold.Lock()
	return m.hold.Unlock
}

// CompletePath is the file of a complete media.
func (m *Store) CompletePath(mediaID string) string { return m.completePath(mediaID) }

// PartialPath is the file of an upload in progress.
func (m *Store) PartialPath(uploadID string) string { return m.partialPath(uploadID) }
