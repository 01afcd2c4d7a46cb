//go:build !linux && !js

package store

// wantWatch: without inotify every look for the want file is a stat
// (want_linux.go watches the folder instead).
type wantWatch struct{}

func watchWant(string) *wantWatch { return nil }

func unwatchWant(*wantWatch) {}

func (w *wantWatch) stamp() (uint64, bool) { return 0, false }
