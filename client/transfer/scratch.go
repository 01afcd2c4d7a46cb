//go:build !js

package transfer

import (
	"io"
	"os"
)

// scratch holds a download's ciphertext until its hash is checked.
type scratch interface {
	io.ReadWriteSeeker
}

// scratchFile is a temporary file in dir (pattern as os.CreateTemp); cleanup
// closes and removes it.
func scratchFile(dir, pattern string) (scratch, func(), error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close(); os.Remove(f.Name()) }, nil
}
