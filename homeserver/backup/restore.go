package backup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Restore recreates the data folder dir from the archive file from.
//
// It first reads the whole archive and checks every checksum (Verify);
// a truncated or corrupted archive is refused before anything is
// written. It then extracts into a fresh private folder beside dir,
// checking every checksum again as it writes (the file could change
// between the two reads), runs prepare on that folder (nil: none), and
// only then renames it to dir. On any failure the folder is removed:
// dir is either the whole restored folder or not there. dir must not
// exist, or be an empty folder.
func Restore(from, dir string, prepare func(tmpDir string, m *Manifest) error) (*Manifest, error) {
	const op = "backup.Restore"
	if err := checkTarget(dir); err != nil {
		return nil, err
	}
	m, err := verifyFile(from)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".restore-")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	f, err := os.Open(from)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer f.Close()
	m2, err := walk(f, func(e File, r io.Reader) error { return extractOne(tmp, e, r) })
	if err != nil {
		return nil, err
	}
	if m2.CreatedMs != m.CreatedMs || len(m2.Files) != len(m.Files) {
		return nil, refuse("the archive changed while it was restored")
	}
	if prepare != nil {
		if err := prepare(tmp, m2); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkTarget(dir); err != nil { // still absent or empty?
		return nil, err
	}
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ok = true
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return m2, fmt.Errorf("%s: restored, but syncing %s failed: %w", op, filepath.Dir(abs), err)
	}
	return m2, nil
}

// VerifyFile verifies the archive file at path (see Verify).
func VerifyFile(path string) (*Manifest, error) { return verifyFile(path) }

func verifyFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	return Verify(f)
}

// checkTarget accepts a folder that does not exist or is empty.
func checkTarget(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty: restore into a new folder", dir)
	}
	return nil
}

// extractOne writes one entry below root; subfolders are made 0700.
func extractOne(root string, e File, r io.Reader) error {
	dst := filepath.Join(root, filepath.FromSlash(e.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fs.FileMode(e.Mode&0o755|0o600))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
