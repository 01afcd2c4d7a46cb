package homeserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"hearth/storage"
)

// TestWarnsSmallCommitLimit: a server whose frame limit holds commits for
// fewer devices than MaxMembers (a data folder from before decision 0004,
// max_frame_bytes = 1 MiB) says so at start-up and how to fix it; one on
// the defaults says nothing.
func TestWarnsSmallCommitLimit(t *testing.T) {
	for _, tc := range []struct {
		frame int
		warn  bool
	}{{1 << 20, true}, {0, false}} {
		var logs bytes.Buffer
		db, err := storage.Open(filepath.Join(t.TempDir(), "h.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		s, err := New(Config{Domain: testDomain, MaxFrame: tc.frame, Password: PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1}},
			Deps{DB: db, SigningKey: key, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		got := strings.Contains(logs.String(), "commit size limit is too small")
		if got != tc.warn {
			t.Fatalf("MaxFrame %d: warned %v, want %v:\n%s", tc.frame, got, tc.warn, logs.String())
		}
		if tc.warn && !strings.Contains(logs.String(), "devices_that_fit=378") {
			t.Fatalf("the warning does not say how many devices fit:\n%s", logs.String())
		}
	}
}
