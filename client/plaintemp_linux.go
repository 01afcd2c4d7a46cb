//go:build linux

package client

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// plainTemp returns an anonymous in-memory file (memfd) for plaintext that
// must be read back once, such as the history archive before it is
// encrypted: it never reaches a disk, so an encrypted profile does not leak
// it, and it is gone when closed. dir is unused here.
func plainTemp(dir, name string) (f *os.File, cleanup func(), err error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd: %w", err)
	}
	f = os.NewFile(uintptr(fd), name)
	return f, func() { f.Close() }, nil
}
