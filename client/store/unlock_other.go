//go:build !unix

package store

import "os"

// unlockFile: on other systems closing the file is all that can be done.
func unlockFile(*os.File) {}
