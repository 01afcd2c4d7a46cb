package transport

import (
	"errors"
	"io"
	"sync"
	"time"
)

// errReadClosed is a chunkReader's read after stop (net.ErrClosed's
// meaning; package net is not linked into the browser client for it).
var errReadClosed = errors.New("transport: read after Close")

// chunkReader reads a stream that arrives in chunks (the browser's
// WebTransport stream, pumped into a channel: webtransport_js.go) as a
// byte stream, for one reader, and drains it for Close. It keeps the rule
// of lastReads: once stop is called, a read in progress finishes (what it
// got is a whole prefix of the stream) and later reads fail with
// errReadClosed; only then does drain take chunks. Before, Close took
// chunks from the channel while the session's reader still did, and the
// reader got frames with chunks missing from their middle.
type chunkReader struct {
	chunks  <-chan []byte // closed at the stream's end
	stopped chan struct{}
	stopper sync.Once
	mu      sync.Mutex // held by Read and by drain
	cur     []byte     // the rest of the chunk Read is taking from
}

func newChunkReader(chunks <-chan []byte) *chunkReader {
	return &chunkReader{chunks: chunks, stopped: make(chan struct{})}
}

// Read returns the stream's bytes; io.EOF after its end.
func (r *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) == 0 {
		select {
		case <-r.stopped:
			return 0, errReadClosed
		default:
		}
		select {
		case c, ok := <-r.chunks:
			if !ok {
				return 0, io.EOF
			}
			r.cur = c
		case <-r.stopped:
			return 0, errReadClosed
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// stop makes later reads fail and wakes a read waiting for a chunk.
func (r *chunkReader) stop() { r.stopper.Do(func() { close(r.stopped) }) }

// drain discards chunks until the stream's end, at most for linger, once
// the read in progress, if any, returned. stop must have been called.
func (r *chunkReader) drain(linger time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := time.NewTimer(linger)
	defer t.Stop()
	for {
		select {
		case _, ok := <-r.chunks:
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}
