//go:build !js

package store

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedProfiles: several Stores (processes) may open one profile at once
// and see each other's commits.
const sharedProfiles = true

// rawProfile is what the profile in dir stores, as an attacker reading
// the disk would see it: the bbolt file.
func rawProfile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
