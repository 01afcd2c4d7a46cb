package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hearth/homeserver/mediastore"
	"hearth/storage"
)

// dataDir is a data folder with a live database, keys, a lock, a
// subfolder, media complete and in progress, and an orphan media file.
type dataDir struct {
	dir   string
	db    *storage.DB
	media *mediastore.Store
}

func newDataDir(t *testing.T) *dataDir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"config.json": `{"domain":"x"}`, "signing.key": "KEY", "hearth.lock": "123", "serve.addr": "127.0.0.1:1",
		"acme/cert.pem": "CERT", ".hidden": "no",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := storage.Open(filepath.Join(dir, "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ms, err := mediastore.Open(mediastore.Config{}, mediastore.Deps{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		u := &storage.User{Name: "u", PassHash: "h", CreatedMs: 1}
		if err := tx.InsertUser(u); err != nil {
			return err
		}
		for i, id := range []string{"done", "uploading"} {
			m := &storage.Media{UploadID: "up-" + id, MediaID: id, UserID: u.ID, DeviceID: "d", TotalSize: 4, CreatedMs: 1}
			if err := tx.InsertMedia(m); err != nil {
				return err
			}
			if i == 0 {
				if err := tx.CompleteMedia(m.UploadID, make([]byte, 32), 2); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string]string{"complete/done": "DONE", "partial/up-uploading": "UP", "complete/orphan": "ORPHAN"} {
		if err := os.WriteFile(filepath.Join(dir, "media", p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &dataDir{dir: dir, db: db, media: ms}
}

func (d *dataDir) maker() *Maker {
	return New(Config{Dir: d.dir, Database: "hearth.db", MediaDir: "media", Skip: []string{"hearth.lock", "serve.addr"}, Domain: "x", Version: "test"},
		Deps{DB: d.db, Media: d.media})
}

func (d *dataDir) archive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	var announced int64
	if err := d.maker().Backup(context.Background(), func(n int64) { announced = n }, &buf); err != nil {
		t.Fatal(err)
	}
	if announced <= 0 {
		t.Fatalf("announced %d bytes", announced)
	}
	return buf.Bytes()
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	d := newDataDir(t)
	b := d.archive(t)
	m, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Path)
	}
	want := "hearth.db acme/cert.pem config.json signing.key media/complete/done media/partial/up-uploading"
	if strings.Join(names, " ") != want {
		t.Fatalf("archive holds %v, want %s", names, want)
	}
	if m.Media != 1 || m.Uploads != 1 || m.Domain != "x" || m.Format != Format || m.DBPages == 0 {
		t.Fatalf("manifest %+v", m)
	}
	if left, _ := filepath.Glob(filepath.Join(d.dir, stagingPrefix+"*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}

	// Gzipped, it restores too; prepare runs before the folder appears.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()
	src := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(src, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	prepared := false
	if _, err := Restore(src, target, func(tmp string, m *Manifest) error {
		prepared = true
		if _, err := os.Stat(target); err == nil {
			t.Error("target exists before prepare returned")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !prepared {
		t.Fatal("prepare did not run")
	}
	for p, body := range map[string]string{"config.json": `{"domain":"x"}`, "acme/cert.pem": "CERT", "media/complete/done": "DONE", "media/partial/up-uploading": "UP"} {
		if got, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(got) != body {
			t.Fatalf("restored %s = %q, %v", p, got, err)
		}
	}
	for _, p := range []string{"hearth.lock", "serve.addr", ".hidden", "media/complete/orphan"} {
		if _, err := os.Stat(filepath.Join(target, p)); err == nil {
			t.Fatalf("restored %s, which a backup leaves out", p)
		}
	}
	db, err := storage.Open(filepath.Join(target, "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Read(context.Background(), func(tx *storage.Tx) error { _, err := tx.CompleteMediaByID("done"); return err }); err != nil {
		t.Fatalf("restored database: %v", err)
	}
	// A folder that is not empty is never restored into.
	if _, err := Restore(src, target, nil); err == nil {
		t.Fatal("restored into a folder that is not empty")
	}
}

// TestBackupHoldsMediaFiles: while a backup runs, the media janitor cannot
// remove files, so a media the snapshot lists is in the archive.
func TestBackupHoldsMediaFiles(t *testing.T) {
	d := newDataDir(t)
	s, err := d.maker().Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mk := s.m
	if _, err := mk.Begin(context.Background()); err == nil {
		t.Fatal("a second backup ran at once on one maker")
	}
	// The media expires and its row goes; the janitor must wait.
	if err := d.db.Write(context.Background(), func(tx *storage.Tx) error {
		_, err := tx.DeleteCompleteMediaBefore(1<<62, 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	janitor := make(chan error, 1)
	go func() { _, err := d.media.RunJanitor(context.Background()); janitor <- err }()
	var buf bytes.Buffer
	m, err := s.WriteTo(context.Background(), &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-janitor:
		t.Fatalf("the janitor ran during the backup (%v)", err)
	default:
	}
	s.Close()
	if err := <-janitor; err != nil {
		t.Fatal(err)
	}
	if m.Media != 1 {
		t.Fatalf("archive has %d media, want 1", m.Media)
	}
	if _, err := os.Stat(d.media.CompletePath("done")); err == nil {
		t.Fatal("the janitor did not remove the expired file after the backup")
	}
}

// TestBackupUploadCompletedMeanwhile: an upload in progress when the
// snapshot was taken that completes before its file is copied is archived
// from complete/ (the row stays incomplete: the media store finishes it).
func TestBackupUploadCompletedMeanwhile(t *testing.T) {
	d := newDataDir(t)
	s, err := d.maker().Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Rename(d.media.PartialPath("up-uploading"), d.media.CompletePath("uploading")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m, err := s.WriteTo(context.Background(), &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := entries(t, buf.Bytes())
	found := false
	for _, f := range files {
		found = found || (f[0] == "media/complete/uploading" && f[1] == "UP")
	}
	if !found || m.Uploads != 1 {
		t.Fatalf("archive %v, %d uploads", files, m.Uploads)
	}
}

// rewrite builds an archive from entries (name, body), manifest last
// when manifest is not nil.
func rewrite(t testing.TB, entries [][2]string, manifest []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e[0], Mode: 0o600, Size: int64(len(e[1]))})
		tw.Write([]byte(e[1]))
	}
	if manifest != nil {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: int64(len(manifest))})
		tw.Write(manifest)
	}
	tw.Close()
	return buf.Bytes()
}

// entries reads an archive's entries back.
func entries(t *testing.T, b []byte) (files [][2]string, manifest []byte) {
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name == ManifestName {
			manifest = body
		} else {
			files = append(files, [2]string{h.Name, string(body)})
		}
	}
}

func TestVerifyRefusesDamagedArchives(t *testing.T) {
	d := newDataDir(t)
	good := d.archive(t)
	files, manifest := entries(t, good)
	idx := bytes.Index(good, []byte("DONE"))
	flipped := bytes.Clone(good)
	flipped[idx] = 'X'
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(good)
	zw.Close()
	cases := map[string][]byte{
		"flipped byte":     flipped,
		"truncated":        good[:len(good)/2],
		"truncated gzip":   gz.Bytes()[:gz.Len()-10],
		"empty":            nil,
		"no manifest":      rewrite(t, files, nil),
		"extra entry":      rewrite(t, append(files[:len(files):len(files)], [2]string{"extra", "x"}), manifest),
		"missing entry":    rewrite(t, files[1:], manifest),
		"unsafe path":      rewrite(t, append(files[:len(files):len(files)], [2]string{"../evil", "x"}), manifest),
		"duplicate":        rewrite(t, append(files[:len(files):len(files)], files[0]), manifest),
		"bad manifest":     rewrite(t, files, []byte("{")),
		"not an archive":   []byte("hello, this is not a tar file at all, but it is long enough"),
		"entry after end":  rewrite(t, append(files[:len(files):len(files)], [2]string{ManifestName, string(manifest)}, [2]string{"late", "x"}), nil),
		"other format":     rewrite(t, files, bytes.Replace(manifest, []byte(Format), []byte("hearth-backup/9"), 1)),
		"wrong size claim": rewrite(t, files, bytes.Replace(manifest, []byte(`"size": 4,`), []byte(`"size": 5,`), 1)),
	}
	root := t.TempDir()
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(b))
			var ae *ArchiveError
			if !errors.As(err, &ae) {
				t.Fatalf("Verify = %v, want an ArchiveError", err)
			}
			src := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(src, b, 0o600)
			target := filepath.Join(root, "target")
			if _, err := Restore(src, target, nil); !errors.As(err, &ae) {
				t.Fatalf("Restore = %v, want an ArchiveError", err)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Fatalf("a refused restore left %d entries", len(ents))
			}
		})
	}
}

// FuzzVerify: no input panics Verify, and an accepted archive's manifest
// matches what a second read finds.
func FuzzVerify(f *testing.F) {
	f.Add(rewrite(f, [][2]string{{"hearth.db", "DB"}},
		[]byte(`{"format":"hearth-backup/1","database":"hearth.db","files":[{"path":"hearth.db","size":2,"mode":384,"sha256":"d2c9a9d8b3c1b1a7d1e1f5e3a6a0e2b5c4d4e8b1f3e9a1c2d6b7a8f9e0c1d2e3"}]}`)))
	f.Add(rewrite(f, nil, []byte(`{}`)))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Verify(bytes.NewReader(b))
		if err != nil {
			return
		}
		m2, err := Verify(bytes.NewReader(b))
		if err != nil || len(m2.Files) != len(m.Files) {
			t.Fatalf("second read: %v", err)
		}
	})
}
