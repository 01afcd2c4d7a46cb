package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Looking for the want file without a stat per look (Linux). A busy
// Store looks every wantBusy (doc.go), which costs a stat system call
// per look and open store: a process holding many profiles at once (the
// load generator holds one per simulated device) spends a share of its
// CPU on them. Here one inotify instance per process watches the folder
// of every open profile and counts, per folder, the events that can
// change what a stat of the want file would say: it being created,
// touched (attributes: its times), closed after writing, moved in or out,
// or removed, and the folder itself going away. A look stats the want
// file only when that count moved since the previous look (or the watch
// is lost, or the event queue overflowed); otherwise the previous stat's
// answer stands, with the same freshness limit (its time plus wantFresh),
// so it says what a stat would. A folder that cannot be watched (inotify
// unavailable, out of watches) is looked at with a stat every time, as
// before.
//
// Writes to the bbolt file next to the want file raise IN_MODIFY, which
// is not watched: a commit causes no event.

const wantEvents = syscall.IN_CREATE | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE |
	syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_DELETE |
	syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR

// wantWatch is one watched profile folder, shared by the Stores of this
// process that have a profile file in it open.
type wantWatch struct {
	wd     int32
	name   string        // the want file's name in the folder
	refs   int           // guarded by watcher.mu
	events atomic.Uint64 // events about the want file (or the folder) seen
	lost   atomic.Bool   // the watch is gone: stat every time
}

// watcher is the process's inotify instance, started by the first watch.
var watcher struct {
	mu      sync.Mutex
	started bool
	fd      int // -1: inotify unavailable
	file    *os.File
	byWD    map[int32]*wantWatch
}

// watchWant starts watching the folder of wantPath, or returns nil when
// it cannot be watched (the caller stats every time).
func watchWant(wantPath string) *wantWatch {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	if !watcher.started {
		watcher.started = true
		watcher.fd = -1
		fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
		if err != nil {
			return nil
		}
		watcher.fd, watcher.file = fd, os.NewFile(uintptr(fd), "inotify")
		watcher.byWD = map[int32]*wantWatch{}
		go readWantEvents(watcher.file)
	}
	if watcher.fd < 0 {
		return nil
	}
	wd, err := syscall.InotifyAddWatch(watcher.fd, filepath.Dir(wantPath), wantEvents)
	if err != nil {
		return nil
	}
	name := filepath.Base(wantPath)
	w := watcher.byWD[int32(wd)]
	if w != nil && w.name != name {
		// The same folder under a want file of another name: not a
		// Store's (FileName is fixed), but do not mix them up.
		return nil
	}
	if w == nil {
		w = &wantWatch{wd: int32(wd), name: name}
		watcher.byWD[w.wd] = w
	}
	w.refs++
	return w
}

// unwatchWant ends one Store's use of w; the folder's watch is removed
// with the last.
func unwatchWant(w *wantWatch) {
	if w == nil {
		return
	}
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	w.refs--
	if w.refs > 0 {
		return
	}
	if watcher.byWD[w.wd] == w {
		delete(watcher.byWD, w.wd)
		syscall.InotifyRmWatch(watcher.fd, uint32(w.wd))
	}
	w.lost.Store(true)
}

// stamp is what a look compares with the previous look's: the count of
// events, and whether the watch still holds (ok false: stat).
func (w *wantWatch) stamp() (n uint64, ok bool) {
	if w == nil || w.lost.Load() {
		return 0, false
	}
	return w.events.Load(), true
}

// readWantEvents reads the inotify events for as long as the process runs.
func readWantEvents(f *os.File) {
	buf := make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Not expected: from now on every look stats.
			watcher.mu.Lock()
			for _, w := range watcher.byWD {
				w.lost.Store(true)
			}
			watcher.fd = -1
			watcher.mu.Unlock()
			return
		}
		handleWantEvents(buf[:n])
	}
}

// handleWantEvents counts the events of one read.
func handleWantEvents(b []byte) {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	for len(b) >= syscall.SizeofInotifyEvent {
		ev := (*syscall.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := syscall.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			end = len(b)
		}
		name := b[syscall.SizeofInotifyEvent:end]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		b = b[end:]
		if ev.Mask&syscall.IN_Q_OVERFLOW != 0 { // events were lost: look again everywhere
			for _, w := range watcher.byWD {
				w.events.Add(1)
			}
			continue
		}
		w := watcher.byWD[ev.Wd]
		if w == nil {
			continue
		}
		if ev.Mask&(syscall.IN_IGNORED|syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF|syscall.IN_UNMOUNT) != 0 {
			w.lost.Store(true) // the folder went away or moved: the want path no longer names what is watched
			continue
		}
		if string(name) == w.name {
			w.events.Add(1)
		}
	}
}
