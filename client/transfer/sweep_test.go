package transfer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepUploads: kept ciphertexts older than staleUpload and leftover
// downloads older than a day go; recent ones and other files stay.
func TestSweepUploads(t *testing.T) {
	prof := t.TempDir()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := New(Config{Dir: prof, Now: func() time.Time { return now }})
	files := map[string]time.Duration{ // name: age
		".upload-old": staleUpload + time.Hour, ".upload-new": time.Hour,
		".download-old": 25 * time.Hour, ".download-new": time.Hour, "keep-me": 100 * 24 * time.Hour,
	}
	for n, age := range files {
		p := filepath.Join(prof, n)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	c.Sweep()
	for n := range files {
		_, err := os.Stat(filepath.Join(prof, n))
		if gone := os.IsNotExist(err); gone != (n == ".upload-old" || n == ".download-old") {
			t.Errorf("%s: gone=%v", n, gone)
		}
	}
}
