package storage

import (
	"database/sql"
	"errors"
	"fmt"
)

// Media is one uploaded (or uploading) file's metadata. The bytes live in
// files the homeserver manages; see migrations/0008_media.sql.
type Media struct {
	UploadID   string
	MediaID    string
	UserID     int64
	DeviceID   string
	TotalSize  int64
	SHA256     []byte // nil until complete
	CreatedMs  int64
	CompleteMs int64 // 0 while uploading
}

// Complete reports whether the upload finished and the bytes are durable.
func (m *Media) Complete() bool { return m.CompleteMs > 0 }

// InsertMedia records a new upload; ErrConflict if either id exists.
func (t *Tx) InsertMedia(m *Media) error {
	const op = "storage.InsertMedia"
	if m.UploadID == "" || m.MediaID == "" || m.TotalSize <= 0 || m.DeviceID == "" {
		return fmt.Errorf("%s: upload needs ids, a device and a positive size", op)
	}
	_, err := t.exec(`INSERT INTO media(upload_id, media_id, user_id, device_id, total_size, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		m.UploadID, m.MediaID, m.UserID, m.DeviceID, m.TotalSize, m.CreatedMs)
	if isUnique(err) {
		return wrap(op, ErrConflict)
	}
	return wrap(op, err)
}

const mediaCols = `upload_id, media_id, user_id, device_id, total_size, sha256, created_ms, complete_ms`

func (t *Tx) oneMedia(op, where string, arg any) (*Media, error) {
	s, err := t.prep(`SELECT ` + mediaCols + ` FROM media WHERE ` + where)
	if err != nil {
		return nil, wrap(op, err)
	}
	m := &Media{}
	err = s.QueryRowContext(t.ctx, arg).Scan(&m.UploadID, &m.MediaID, &m.UserID, &m.DeviceID, &m.TotalSize, &m.SHA256, &m.CreatedMs, &m.CompleteMs)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return m, nil
}

// MediaUpload returns the upload with this upload id, complete or not.
func (t *Tx) MediaUpload(uploadID string) (*Media, error) {
	return t.oneMedia("storage.MediaUpload", `upload_id = ?`, uploadID)
}

// CompleteMediaByID returns the complete media with this media id;
// ErrNotFound for an unknown id and for an upload still in progress.
func (t *Tx) CompleteMediaByID(mediaID string) (*Media, error) {
	return t.oneMedia("storage.CompleteMediaByID", `media_id = ? AND complete_ms > 0`, mediaID)
}

// CompleteMedia marks an upload complete with the SHA-256 of its bytes.
// ErrNotFound if there is no such incomplete upload.
func (t *Tx) CompleteMedia(uploadID string, sha256 []byte, nowMs int64) error {
	if len(sha256) != 32 {
		return fmt.Errorf("storage.CompleteMedia: sha256 must be 32 bytes")
	}
	return wrap("storage.CompleteMedia", affected(t.exec(
		`UPDATE media SET sha256 = ?, complete_ms = ? WHERE upload_id = ? AND complete_ms = 0`, sha256, max(nowMs, 1), uploadID)))
}

// OpenMediaUploads counts a device's incomplete uploads.
func (t *Tx) OpenMediaUploads(deviceID string) (int, error) {
	var n int
	err := t.row(`SELECT count(*) FROM media WHERE device_id = ? AND complete_ms = 0`, []any{deviceID}, &n)
	return n, wrap("storage.OpenMediaUploads", err)
}

// MediaBytes sums the declared sizes of a user's uploads, complete or not.
func (t *Tx) MediaBytes(userID int64) (int64, error) {
	var n int64
	err := t.row(`SELECT coalesce(sum(total_size), 0) FROM media WHERE user_id = ?`, []any{userID}, &n)
	return n, wrap("storage.MediaBytes", err)
}

// StaleMediaUploads lists up to limit incomplete uploads created before
// beforeMs, oldest first.
func (t *Tx) StaleMediaUploads(beforeMs int64, limit int) ([]*Media, error) {
	const op = "storage.StaleMediaUploads"
	rows, err := t.query(`SELECT `+mediaCols+` FROM media WHERE complete_ms = 0 AND created_ms < ? ORDER BY created_ms LIMIT ?`, beforeMs, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []*Media
	for rows.Next() {
		m := &Media{}
		if err := rows.Scan(&m.UploadID, &m.MediaID, &m.UserID, &m.DeviceID, &m.TotalSize, &m.SHA256, &m.CreatedMs, &m.CompleteMs); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, m)
	}
	return out, wrap(op, rows.Err())
}

// DeleteIncompleteMedia removes an upload that never completed;
// ErrNotFound if it is gone or completed meanwhile.
func (t *Tx) DeleteIncompleteMedia(uploadID string) error {
	return wrap("storage.DeleteIncompleteMedia", affected(t.exec(
		`DELETE FROM media WHERE upload_id = ? AND complete_ms = 0`, uploadID)))
}

// GoneMedia lists up to limit deleted uploads whose files may still exist
// (recorded by a trigger on every delete from media, cascades included).
func (t *Tx) GoneMedia(limit int) ([]Media, error) {
	const op = "storage.GoneMedia"
	rows, err := t.query(`SELECT upload_id, media_id FROM media_gone LIMIT ?`, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []Media
	for rows.Next() {
		var m Media
		if err := rows.Scan(&m.UploadID, &m.MediaID); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, m)
	}
	return out, wrap(op, rows.Err())
}

// ForgetGoneMedia drops the record of a deleted upload once its files are gone.
func (t *Tx) ForgetGoneMedia(uploadID string) error {
	_, err := t.exec(`DELETE FROM media_gone WHERE upload_id = ?`, uploadID)
	return wrap("storage.ForgetGoneMedia", err)
}

// DeleteCompleteMediaBefore deletes up to limit media completed before
// beforeMs (the gone trigger records them for the file janitor) and
// returns how many.
func (t *Tx) DeleteCompleteMediaBefore(beforeMs int64, limit int) (int64, error) {
	res, err := t.exec(`DELETE FROM media WHERE upload_id IN
		(SELECT upload_id FROM media WHERE complete_ms > 0 AND complete_ms < ? LIMIT ?)`, beforeMs, limit)
	if err != nil {
		return 0, wrap("storage.DeleteCompleteMediaBefore", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("storage.DeleteCompleteMediaBefore", err)
}
