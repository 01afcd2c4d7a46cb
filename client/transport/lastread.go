//go:build !js

package transport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// lastReads keeps a stream's reads and the drain of its Close apart.
//
// Close reads what the server still sends until its FIN and discards it
// (wtConn, nativeConn), while the session's reader may still be reading
// the same stream. Reads of a QUIC stream are serialised, but not as a
// whole: the drain took 8 KiB between two of the reader's reads, and the
// reader then got a frame whose end was the start of the frames behind
// it. When the cut fell inside a large bytes field the frame still
// decoded, and a Welcome's GroupInfo failed to parse (docs/churn.md,
// TestCloseWhileReading). So once Close starts, a read that has begun
// finishes (what it got is a whole prefix of the stream) and every later
// read fails with net.ErrClosed; only then does Close drain.
type lastReads struct {
	mu      sync.Mutex // held by a read, and by the drain
	closing atomic.Bool
}

// read reads r into p unless Close has started.
func (l *lastReads) read(r io.Reader, p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return 0, net.ErrClosed
	}
	return r.Read(p)
}

// stop makes later reads fail; a read in progress finishes.
func (l *lastReads) stop() { l.closing.Store(true) }

// drain reads r to its end (or its read deadline) and discards it, once
// the read in progress, if any, returned. stop must have been called.
func (l *lastReads) drain(r io.Reader) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.Copy(io.Discard, r)
}
