//go:build !linux

package client

import "os"

// plainTemp returns a temporary file in dir for plaintext that must be read
// back once (see the Linux version, which keeps it in memory); cleanup
// closes and removes it.
func plainTemp(dir, name string) (f *os.File, cleanup func(), err error) {
	f, err = os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close(); os.Remove(f.Name()) }, nil
}
