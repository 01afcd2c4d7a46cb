package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"hearth/homeserver/wire"
)

// Backuper writes a backup archive of the running server
// (homeserver/backup.Maker).
type Backuper interface {
	// Backup takes the snapshot, calls size with the bytes of the files
	// the archive will hold, then writes the archive to w.
	Backup(ctx context.Context, size func(bytes int64), w io.Writer) error
}

// SocketOption configures a SocketServer.
type SocketOption func(*SocketServer)

// WithBackup serves POST /v1/backup with b.
func WithBackup(b Backuper) SocketOption {
	return func(s *SocketServer) { s.backup = b }
}

// BackupBytesHeader carries the size of the files a backup archive holds
// (the archive is a little larger: tar headers and the manifest).
const BackupBytesHeader = "Hearth-Backup-Bytes"

// serveBackup streams the archive as the response body. An error after
// the archive started cuts the connection, so the client never takes a
// truncated archive for a whole one (it also verifies the manifest).
func (s *SocketServer) serveBackup(w http.ResponseWriter, r *http.Request) {
	if s.backup == nil {
		wire.WriteError(w, s.log, wire.Errorf("admin.Backup", wire.Code_CODE_NOT_FOUND, "this server offers no backup"))
		return
	}
	rc := http.NewResponseController(w)
	// The archive takes as long as it takes: no read or write deadline.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	started := false
	err := s.backup.Backup(r.Context(), func(n int64) {
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set(BackupBytesHeader, strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusOK)
		started = true
	}, w)
	switch {
	case err == nil:
		s.log.Info("backup written")
	case !started:
		wire.WriteError(w, s.log, err)
	default:
		s.log.Error("backup failed while being written", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// Backup asks the server for a backup archive and copies it to w.
// progress, if not nil, is called with the bytes received and the size
// the server announced (the archive ends a little past it). The caller
// must verify what w received (backup.Verify): a server that fails
// mid-way cuts the stream.
func (c *Client) Backup(ctx context.Context, w io.Writer, progress func(done, total int64)) error {
	const op = "admin.Backup"
	req, err := http.NewRequestWithContext(ctx, "POST", "http://admin/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	hc := &http.Client{Transport: c.hc.Transport} // no overall timeout: ctx bounds it
	rsp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return &NotRunningError{Path: c.path, Err: err}
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	defer rsp.Body.Close()
	if rsp.StatusCode >= 300 {
		var eb wire.ErrorBody
		if err := json.NewDecoder(io.LimitReader(rsp.Body, 1<<20)).Decode(&eb); err != nil || eb.Code == "" {
			return fmt.Errorf("%s: server answered %s", op, rsp.Status)
		}
		return eb.Err(op)
	}
	total, _ := strconv.ParseInt(rsp.Header.Get(BackupBytesHeader), 10, 64)
	pw := &progressWriter{w: w, total: total, f: progress}
	if _, err := io.Copy(pw, rsp.Body); err != nil {
		return fmt.Errorf("%s: the archive was cut after %d bytes: %w", op, pw.done, err)
	}
	return nil
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	f           func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.f != nil {
		p.f(p.done, p.total)
	}
	return n, err
}
