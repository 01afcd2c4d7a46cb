package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-sqlite3"
)

// snapshotStep is how many pages one backup step copies (4 MiB of 4 KiB
// pages): each step is short, and ctx is checked between steps.
const snapshotStep = 1024

// SnapshotInfo describes a finished Snapshot.
type SnapshotInfo struct {
	Pages int // pages copied
	// MediaIDs are the media complete in the snapshot, sorted: their files
	// belong with it.
	MediaIDs []string
	// Uploads are the uploads in progress in the snapshot.
	Uploads []Upload
}

// Upload names an upload in progress.
type Upload struct{ UploadID, MediaID string }

// Snapshot writes a consistent copy of the database, as of one moment, to
// the new file dest, while the server keeps running.
//
// It uses SQLite's online backup API on a connection of its own that holds
// one read transaction from the first page to the last: every step copies
// from the same WAL snapshot, so the copy never restarts, and the writer is
// never blocked (in WAL mode a reader does not wait for the writer nor the
// writer for it; the WAL only cannot be checkpointed past the snapshot
// until the copy ends). progress, if not nil, is called after every step
// with the pages copied and the total. The copy is checked with
// quick_check and fsynced before Snapshot returns.
func (db *DB) Snapshot(ctx context.Context, dest string, progress func(done, total int)) (*SnapshotInfo, error) {
	const op = "storage.Snapshot"
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("%s: %s already exists", op, dest)
	}
	src, err := sql.Open(driverName, dsn(db.path, db.opts, true))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer src.Close()
	sconn, err := src.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: source: %w", op, err)
	}
	defer sconn.Close()
	// BEGIN, then a read: the read transaction (and its WAL snapshot)
	// starts here and is what every backup step reads.
	if _, err := sconn.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, fmt.Errorf("%s: begin: %w", op, err)
	}
	defer sconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	info := &SnapshotInfo{}
	if info.MediaIDs, info.Uploads, err = snapshotMedia(ctx, sconn); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}

	dst, err := sql.Open(driverName, "file:"+dest+"?_busy_timeout=5000")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	dst.SetMaxOpenConns(1)
	ok := false
	defer func() {
		dst.Close()
		if !ok {
			removeDBFiles(dest)
		}
	}()
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: destination: %w", op, err)
	}
	defer dconn.Close()
	err = dconn.Raw(func(d any) error {
		return sconn.Raw(func(s any) error {
			dc, ok1 := d.(*sqlite3.SQLiteConn)
			sc, ok2 := s.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not a sqlite3 connection")
			}
			return copyPages(ctx, dc, sc, info, progress)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var check string
	if err := dconn.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
		return nil, fmt.Errorf("%s: the copy fails quick_check: %q %v", op, check, err)
	}
	// The copy keeps the source's WAL mode; fold everything into the
	// main file so that dest alone is the whole database.
	if _, err := dconn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return nil, fmt.Errorf("%s: checkpoint the copy: %w", op, err)
	}
	dconn.Close()
	if err := dst.Close(); err != nil {
		return nil, fmt.Errorf("%s: close the copy: %w", op, err)
	}
	if err := syncFile(dest); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ok = true
	return info, nil
}

// copyPages runs the backup steps from sc into dc.
func copyPages(ctx context.Context, dc, sc *sqlite3.SQLiteConn, info *SnapshotInfo, progress func(done, total int)) error {
	b, err := dc.Backup("main", sc, "main")
	if err != nil {
		return fmt.Errorf("backup init: %w", err)
	}
	defer b.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := b.Remaining()
		done, err := b.Step(snapshotStep)
		if err != nil {
			return fmt.Errorf("backup step: %w", err)
		}
		total := b.PageCount()
		if progress != nil {
			progress(total-b.Remaining(), total)
		}
		if done {
			info.Pages = total
			return b.Finish()
		}
		if b.Remaining() == before && before != 0 {
			// BUSY/LOCKED on the destination (nobody else should hold
			// it): wait a little instead of spinning.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// snapshotMedia lists the complete media and the uploads in progress as
// of the connection's snapshot.
func snapshotMedia(ctx context.Context, c *sql.Conn) (complete []string, uploads []Upload, err error) {
	rows, err := c.QueryContext(ctx, `SELECT upload_id, media_id, complete_ms FROM media ORDER BY media_id`)
	if err != nil {
		return nil, nil, fmt.Errorf("list media: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u Upload
		var done int64
		if err := rows.Scan(&u.UploadID, &u.MediaID, &done); err != nil {
			return nil, nil, fmt.Errorf("list media: %w", err)
		}
		if done > 0 {
			complete = append(complete, u.MediaID)
		} else {
			uploads = append(uploads, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list media: %w", err)
	}
	return complete, uploads, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func removeDBFiles(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		os.Remove(p)
	}
}
