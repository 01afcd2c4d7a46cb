package backup

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Format names the archive layout; Verify refuses any other.
const Format = "hearth-backup/1"

// ManifestName is the archive's last entry.
const ManifestName = "MANIFEST.json"

// maxManifest bounds the manifest a reader accepts.
const maxManifest = 64 << 20

// Manifest lists every file of an archive with its size and SHA-256.
type Manifest struct {
	Format    string `json:"format"`
	Domain    string `json:"domain"`
	Version   string `json:"version"`    // the server's version
	CreatedMs int64  `json:"created_ms"` // when the database snapshot began
	Database  string `json:"database"`   // the database's path in the archive
	DBPages   int    `json:"db_pages"`
	Media     int    `json:"media"`   // complete media files in the archive
	Uploads   int    `json:"uploads"` // files of uploads in progress in the archive
	Files     []File `json:"files"`
}

// File is one archive entry.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the data folder
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"` // permission bits
	SHA256 string `json:"sha256"`
}

// Bytes is the total size of the files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// ArchiveError says why an archive was refused.
type ArchiveError struct{ Msg string }

func (e *ArchiveError) Error() string { return "backup archive refused: " + e.Msg }

func refuse(format string, args ...any) error {
	return &ArchiveError{Msg: fmt.Sprintf(format, args...)}
}

// checkPath accepts a clean relative slash path that stays inside the
// folder it is extracted to.
func checkPath(p string) error {
	if p == "" || p != path.Clean(p) || path.IsAbs(p) || p == "." || p == ".." ||
		strings.HasPrefix(p, "../") || strings.ContainsAny(p, "\\\x00") {
		return refuse("unsafe path %q", p)
	}
	return nil
}

// archiveWriter writes entries to a tar stream and records them for the
// manifest.
type archiveWriter struct {
	tw    *tar.Writer
	files []File
	seen  map[string]bool
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	return &archiveWriter{tw: tar.NewWriter(w), seen: map[string]bool{}}
}

// add copies size bytes of r as entry name, hashing them on the way.
func (a *archiveWriter) add(name string, mode uint32, size int64, r io.Reader) error {
	if err := checkPath(name); err != nil {
		return err
	}
	if a.seen[name] || name == ManifestName {
		return fmt.Errorf("backup: entry %s twice", name)
	}
	a.seen[name] = true
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode & 0o777), Size: size, Format: tar.FormatPAX}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(a.tw, io.TeeReader(io.LimitReader(r, size), h))
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("backup: %s: %d bytes, want %d (it changed while being copied)", name, n, size)
	}
	a.files = append(a.files, File{Path: name, Size: size, Mode: mode & 0o777, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// finish writes the manifest as the last entry and closes the tar stream.
func (a *archiveWriter) finish(m *Manifest) error {
	m.Format = Format
	m.Files = a.files
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: int64(len(b)), Format: tar.FormatPAX}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	if _, err := a.tw.Write(b); err != nil {
		return fmt.Errorf("backup: manifest: %w", err)
	}
	return a.tw.Close()
}

// maybeGunzip returns r, decompressed when it starts with the gzip magic.
func maybeGunzip(r io.Reader) (io.Reader, func() error, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, refuse("empty or truncated archive")
		}
		return nil, nil, err
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, refuse("bad gzip stream: %v", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() error { return nil }, nil
}

// entryFunc receives each entry's content while Walk checks it; it
// must read r to its end (or fail).
type entryFunc func(f File, r io.Reader) error

// walk reads a whole archive (tar, optionally gzipped), hashes every
// entry, reads the manifest at its end and checks that the entries are
// exactly the manifest's files with their sizes and hashes. each, when
// not nil, sees every entry's bytes before its hash is known: whatever
// it writes must be discarded unless walk returns nil.
func walk(r io.Reader, each entryFunc) (*Manifest, error) {
	zr, closeZ, err := maybeGunzip(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	got := map[string]File{}
	var order []string
	var manifest *Manifest
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, refuse("truncated or corrupted tar stream: %v", err)
		}
		if manifest != nil {
			return nil, refuse("entry %q after the manifest", hdr.Name)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, refuse("entry %q is not a regular file", hdr.Name)
		}
		if err := checkPath(hdr.Name); err != nil {
			return nil, err
		}
		if _, dup := got[hdr.Name]; dup {
			return nil, refuse("entry %q twice", hdr.Name)
		}
		if hdr.Name == ManifestName {
			if hdr.Size > maxManifest {
				return nil, refuse("manifest of %d bytes", hdr.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, refuse("truncated manifest: %v", err)
			}
			manifest = &Manifest{}
			if err := json.Unmarshal(b, manifest); err != nil {
				return nil, refuse("manifest is not valid JSON: %v", err)
			}
			continue
		}
		h := sha256.New()
		f := File{Path: hdr.Name, Size: hdr.Size, Mode: uint32(hdr.Mode) & 0o777}
		src := io.TeeReader(tr, h)
		var n int64
		if each != nil {
			cr := &countReader{r: src}
			err = each(f, cr)
			n = cr.n
			if err == nil {
				var m int64
				m, err = io.Copy(io.Discard, cr)
				n += m
			}
		} else {
			n, err = io.Copy(io.Discard, src)
		}
		if err != nil {
			var ae *ArchiveError
			if errors.As(err, &ae) {
				return nil, err
			}
			return nil, refuse("reading %q: %v", hdr.Name, err)
		}
		if n != hdr.Size {
			return nil, refuse("entry %q has %d bytes, its header says %d", hdr.Name, n, hdr.Size)
		}
		f.SHA256 = hex.EncodeToString(h.Sum(nil))
		got[hdr.Name] = f
		order = append(order, hdr.Name)
	}
	if err := closeZ(); err != nil {
		return nil, refuse("bad gzip stream: %v", err)
	}
	if manifest == nil {
		return nil, refuse("no %s: the archive is truncated or not a Hearth backup", ManifestName)
	}
	if err := manifest.match(got); err != nil {
		return nil, err
	}
	return manifest, nil
}

// match checks the manifest against the entries read.
func (m *Manifest) match(got map[string]File) error {
	if m.Format != Format {
		return refuse("format %q, want %q", m.Format, Format)
	}
	if err := checkPath(m.Database); err != nil {
		return refuse("database path: %v", err)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		if listed[f.Path] {
			return refuse("manifest lists %q twice", f.Path)
		}
		listed[f.Path] = true
		g, ok := got[f.Path]
		switch {
		case !ok:
			return refuse("%q is in the manifest but not in the archive", f.Path)
		case g.Size != f.Size:
			return refuse("%q: %d bytes, the manifest says %d", f.Path, g.Size, f.Size)
		case g.SHA256 != f.SHA256:
			return refuse("%q: checksum mismatch (sha256 %s, the manifest says %s)", f.Path, g.SHA256, f.SHA256)
		}
	}
	for p := range got {
		if !listed[p] {
			return refuse("%q is in the archive but not in the manifest", p)
		}
	}
	if !listed[m.Database] {
		return refuse("the database %q is missing", m.Database)
	}
	return nil
}

// Verify reads a whole archive and checks every entry against the
// manifest: sizes, SHA-256, no entry missing or extra, safe paths. A
// truncated or corrupted archive gives an *ArchiveError.
func Verify(r io.Reader) (*Manifest, error) {
	return walk(r, nil)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
