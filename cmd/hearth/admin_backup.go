package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"hearth/homeserver/admin"
	"hearth/homeserver/backup"
)

func newAdminBackupCmd(env *adminEnv) *cobra.Command {
	var out string
	var gz bool
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent backup of the running server to FILE",
		Long: `backup asks the running server for a consistent snapshot of its database,
taken while it keeps serving, and writes it with the data folder's keys,
config, certificates and media files to FILE: a tar archive (gzipped with
--gzip or a FILE ending in .gz or .tgz) whose last entry, MANIFEST.json,
lists every file with its SHA-256. FILE is written beside itself as
FILE.partial, verified, then renamed; an existing FILE is never
overwritten, and FILE must be outside the data folder. Progress goes to standard error on a terminal.
Restore it with: hearth restore --dir NEWDIR --from FILE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env.server != "" || env.profile != "" {
				return errors.New("backup runs over the local admin socket only: run hearth admin --dir DIR backup on the server's host")
			}
			if out == "" {
				return errors.New("--out FILE is required")
			}
			if err := outsideDataDir(env.dir, out); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			c, err := env.ops()
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := writeBackup(ctx, c, out, gz || strings.HasSuffix(out, ".gz") || strings.HasSuffix(out, ".tgz"), cmd.ErrOrStderr())
			if err != nil {
				return adminError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup: %s\nsnapshot: %s\nfiles: %d\nmedia: %d\nuploads: %d\nbytes: %d\n",
				out, time.UnixMilli(m.CreatedMs).UTC().Format(time.RFC3339), len(m.Files), m.Media, m.Uploads, m.Bytes())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the archive file to write (must not exist)")
	cmd.Flags().BoolVar(&gz, "gzip", false, "compress the archive with gzip")
	return cmd
}

// outsideDataDir refuses an archive inside the data folder: the next
// backup would copy it (and this one its own partial file).
func outsideDataDir(dir, out string) error {
	if dir == "" {
		d, err := defaultServerDir()
		if err != nil {
			return err
		}
		dir = d
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(absDir, absOut); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("--out %s is inside the data folder %s: write the archive elsewhere", out, dir)
	}
	return nil
}

// writeBackup streams the server's archive into out.partial, verifies it
// and renames it to out.
func writeBackup(ctx context.Context, c *admin.Client, out string, gz bool, stderr io.Writer) (*backup.Manifest, error) {
	if _, err := os.Lstat(out); err == nil {
		return nil, fmt.Errorf("%s exists: choose a new file", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create the archive: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	bar := newProgressBar(stderr)
	if bar != nil {
		fmt.Fprintln(stderr, "backup: the server is copying its database…")
	}
	if err := c.Backup(ctx, w, bar.update); err != nil {
		bar.finish()
		return nil, err
	}
	bar.finish()
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("write the archive: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write the archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write the archive: %w", err)
	}
	m, err := backup.VerifyFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("the archive received does not verify: %w", err)
	}
	if err := os.Link(tmp, out); err != nil { // never replaces an existing out
		return nil, fmt.Errorf("write the archive: %w", err)
	}
	os.Remove(tmp)
	ok = true
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return m, nil
}

// progressBar draws bytes received on a terminal; nil (a no-op) when
// stderr is not one.
type progressBar struct {
	w           io.Writer
	last        time.Time
	drew        bool
	done, total int64 // the latest figures, drawn once more at the end
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressBar{w: w}
}

func (p *progressBar) update(done, total int64) {
	if p == nil {
		return
	}
	p.done, p.total = done, total
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.draw()
}

func (p *progressBar) draw() {
	done, total := p.done, p.total
	p.last = time.Now()
	p.drew = true
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %s / %s ", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, mib(done), mib(total))
}

// finish draws the last figures and ends the line.
func (p *progressBar) finish() {
	if p != nil && p.drew {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
