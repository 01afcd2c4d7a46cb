package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// Snapshotter copies the live database (storage.DB.Snapshot).
type Snapshotter interface {
	Snapshot(ctx context.Context, dest string, progress func(done, total int)) (*storage.SnapshotInfo, error)
}

// MediaFiles gives the files of complete media and holds back their
// removal (homeserver/mediastore.Store).
type MediaFiles interface {
	// HoldFiles stops media files from being removed until release.
	HoldFiles() (release func())
	// CompletePath is the file of a complete media.
	CompletePath(mediaID string) string
	// PartialPath is the file of an upload in progress.
	PartialPath(uploadID string) string
}

// Config says what goes into an archive.
type Config struct {
	Dir      string   // the data folder: its files are copied, keeping their relative paths
	Database string   // the database file's name in Dir (its snapshot is copied instead)
	MediaDir string   // the media folder's name in Dir (only the media of the snapshot are copied)
	Skip     []string // names in Dir never copied: lock, socket, address file
	Domain   string
	Version  string
}

// Deps are the Maker's collaborators; DB and Media are required.
type Deps struct {
	DB    Snapshotter
	Media MediaFiles
	Now   func() time.Time
	Log   *slog.Logger
}

// Maker takes backups of a running server, one at a time.
type Maker struct {
	cfg  Config
	deps Deps
	busy sync.Mutex
}

// stagingPrefix names the folders in Dir that hold a snapshot while its
// archive is written. They are never copied, and left-over ones (a
// server killed during a backup) are removed by the next backup.
const stagingPrefix = ".backup-"

// New returns a Maker.
func New(cfg Config, deps Deps) *Maker {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	return &Maker{cfg: cfg, deps: deps}
}

// Snapshot is a backup in progress: the database is copied and the media
// files it refers to are held until Close.
type Snapshot struct {
	m        *Maker
	staging  string
	release  func()
	manifest Manifest
	files    []planned
	// Missing are media the snapshot calls complete whose file is gone
	// (a damaged folder); the archive goes without them.
	Missing []string
	// Bytes is the size of the files the archive will hold.
	Bytes int64
}

type planned struct {
	name string // archive path
	src  string // file to copy
	mode fs.FileMode
	// alt, when set, is copied instead if src is gone when the archive is
	// written (an upload that completed meanwhile: partial/ renamed to
	// complete/).
	alt *planned
}

// Begin copies the database (storage.DB.Snapshot) and lists the files the
// archive will hold: the database copy, every regular file of the data
// folder except the live database, lock, socket and hidden files, and the
// files of the media complete in the snapshot. Media files cannot be
// removed from before the copy until Close, so every media the copy
// refers to is still there when the archive is written.
func (m *Maker) Begin(ctx context.Context) (*Snapshot, error) {
	const op = "backup.Begin"
	if !m.busy.TryLock() {
		return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "a backup is already running")
	}
	s := &Snapshot{m: m}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	m.removeStale()
	var err error
	if s.staging, err = os.MkdirTemp(m.cfg.Dir, stagingPrefix); err != nil {
		return nil, wire.Internal(op, err)
	}
	s.release = m.deps.Media.HoldFiles()
	s.manifest = Manifest{Domain: m.cfg.Domain, Version: m.cfg.Version, CreatedMs: m.deps.Now().UnixMilli(), Database: m.cfg.Database}
	copyPath := filepath.Join(s.staging, m.cfg.Database)
	info, err := m.deps.DB.Snapshot(ctx, copyPath, nil)
	if err != nil {
		return nil, wire.Internal(op, err)
	}
	s.manifest.DBPages = info.Pages
	s.files = append(s.files, planned{name: m.cfg.Database, src: copyPath, mode: 0o600})
	if err := m.planDir(s); err != nil {
		return nil, wire.Internal(op, err)
	}
	for _, id := range info.MediaIDs {
		p := m.deps.Media.CompletePath(id)
		if _, err := os.Stat(p); err != nil {
			m.deps.Log.Error("backup: a complete media has no file", "media", id, "err", err)
			s.Missing = append(s.Missing, id)
			continue
		}
		s.files = append(s.files, planned{name: path.Join(m.cfg.MediaDir, "complete", id), src: p, mode: 0o600})
		s.manifest.Media++
	}
	// An upload in progress keeps what it received (the file's size is
	// where it resumes); one that completed since the snapshot is archived
	// as an incomplete row with its file in complete/, the state a crash
	// after the rename leaves and the media store finishes.
	for _, u := range info.Uploads {
		done := &planned{name: path.Join(m.cfg.MediaDir, "complete", u.MediaID), src: m.deps.Media.CompletePath(u.MediaID), mode: 0o600}
		part := planned{name: path.Join(m.cfg.MediaDir, "partial", u.UploadID), src: m.deps.Media.PartialPath(u.UploadID), mode: 0o600, alt: done}
		// An upload in parts (a folder) is not archived: it restarts.
		if fi, err := os.Stat(part.src); err != nil || fi.IsDir() {
			if _, err := os.Stat(done.src); err != nil {
				continue // not started on disk, or abandoned: it restarts from zero
			}
			part = *done
		}
		s.files = append(s.files, part)
		s.manifest.Uploads++
	}
	for _, f := range s.files {
		if fi, err := os.Stat(f.src); err == nil {
			s.Bytes += fi.Size()
		}
	}
	ok = true
	return s, nil
}

// planDir lists the data folder's own files (config, keys, certificates).
func (m *Maker) planDir(s *Snapshot) error {
	skip := map[string]bool{m.cfg.MediaDir: true}
	for _, n := range append([]string{m.cfg.Database}, m.cfg.Skip...) {
		skip[n] = true
	}
	for _, sfx := range []string{"-wal", "-shm", "-journal"} {
		skip[m.cfg.Database+sfx] = true
	}
	return filepath.WalkDir(m.cfg.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(m.cfg.Dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if skip[name] || strings.HasPrefix(path.Base(name), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // folders are walked; sockets and links are not copied
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s.files = append(s.files, planned{name: name, src: p, mode: fi.Mode().Perm()})
		return nil
	})
}

// removeStale removes staging folders a killed server left behind.
func (m *Maker) removeStale() {
	old, _ := filepath.Glob(filepath.Join(m.cfg.Dir, stagingPrefix+"*"))
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			m.deps.Log.Warn("backup: remove a left-over staging folder", "path", p, "err", err)
		}
	}
}

// WriteTo writes the archive (tar, manifest last) to w and returns its
// manifest. progress, if not nil, is called with the bytes of files
// written so far.
func (s *Snapshot) WriteTo(ctx context.Context, w io.Writer, progress func(done int64)) (*Manifest, error) {
	const op = "backup.Write"
	aw := newArchiveWriter(w)
	var done int64
	for _, f := range s.files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		n, err := addFile(aw, f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		done += n
		if progress != nil {
			progress(done)
		}
	}
	mf := s.manifest
	if err := aw.finish(&mf); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &mf, nil
}

// addFile copies one file at its size when opened (a file replaced
// meanwhile, such as a renewed certificate, is copied whole, old or new;
// a file still being appended to is copied up to that size).
func addFile(aw *archiveWriter, f planned) (int64, error) {
	in, err := os.Open(f.src)
	if errors.Is(err, fs.ErrNotExist) && f.alt != nil {
		return addFile(aw, *f.alt)
	}
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), aw.add(f.name, uint32(f.mode), fi.Size(), in)
}

// Close removes the database copy and lets media files be removed again.
func (s *Snapshot) Close() error {
	if s.m == nil {
		return nil
	}
	if s.release != nil {
		s.release()
	}
	var err error
	if s.staging != "" {
		err = os.RemoveAll(s.staging)
	}
	s.m.busy.Unlock()
	s.m = nil
	return err
}

// Backup takes a snapshot (Begin), calls size with its file bytes, writes
// the archive to w and closes the snapshot: admin.Backuper.
func (m *Maker) Backup(ctx context.Context, size func(int64), w io.Writer) error {
	s, err := m.Begin(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if len(s.Missing) > 0 {
		m.deps.Log.Warn("backup: media files missing, archived without them", "count", len(s.Missing))
	}
	size(s.Bytes)
	mf, err := s.WriteTo(ctx, w, nil)
	if err != nil {
		return err
	}
	m.deps.Log.Info("backup", "files", len(mf.Files), "bytes", mf.Bytes(), "media", mf.Media, "db_pages", mf.DBPages)
	return nil
}
