//go:build unix

package store

import (
	"os"
	"syscall"
)

// unlockFile releases the flock bbolt took on f. Closing f alone does not
// while bbolt's memory map of it still exists (it holds the open file), and
// a DB bbolt panicked in is never unmapped.
func unlockFile(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
