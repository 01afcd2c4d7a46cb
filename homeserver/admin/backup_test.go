package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"hearth/homeserver/wire"
)

// scriptedBackup writes body, then fails with err (nil: succeeds); with
// early set it fails before the archive starts.
type scriptedBackup struct {
	body  string
	err   error
	early bool
}

func (b scriptedBackup) Backup(ctx context.Context, size func(int64), w io.Writer) error {
	if b.early {
		return b.err
	}
	size(int64(len(b.body)) * 2)
	if _, err := io.WriteString(w, b.body); err != nil {
		return err
	}
	return b.err
}

// TestBackupRoute: the archive streams with its announced size and
// progress; an error before it starts is a clean error answer; an error
// after it started cuts the stream, so the client never takes a part for
// the whole; a server without backups says so.
func TestBackupRoute(t *testing.T) {
	body := strings.Repeat("archive bytes ", 50000)
	for _, c := range []struct {
		name    string
		b       Backuper
		wantErr string
		code    wire.Code
	}{
		{"whole", scriptedBackup{body: body}, "", 0},
		{"busy", scriptedBackup{err: wire.Errorf("backup.Begin", wire.Code_CODE_UNAVAILABLE, "a backup is already running"), early: true}, "already running", wire.Code_CODE_UNAVAILABLE},
		{"cut", scriptedBackup{body: body, err: errors.New("disk read failed")}, "cut after", 0},
		{"none", nil, "no backup", wire.Code_CODE_NOT_FOUND},
	} {
		t.Run(c.name, func(t *testing.T) {
			var opts []SocketOption
			if c.b != nil {
				opts = append(opts, WithBackup(c.b))
			}
			path, _ := startSocket(t, newMemOps(), opts...)
			cl, err := Dial(path)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var got bytes.Buffer
			var lastDone, total int64
			err = cl.Backup(context.Background(), &got, func(d, tot int64) { lastDone, total = d, tot })
			if c.wantErr == "" {
				if err != nil || got.String() != body || lastDone != int64(len(body)) || total != 2*int64(len(body)) {
					t.Fatalf("err %v, %d bytes (progress %d of %d)", err, got.Len(), lastDone, total)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
			if c.code != 0 && wire.KindOf(err) != c.code {
				t.Fatalf("kind %v, want %v", wire.KindOf(err), c.code)
			}
		})
	}
}
