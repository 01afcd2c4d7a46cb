package homeserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/wire"
	"hearth/homeserver/workers"
)

// maxPendingBytes is how many bytes of frames may wait for a session's
// stream while a write is in progress; a writer that finds more waits for
// the flusher (backpressure, as a blocking stream write did).
const maxPendingBytes = 256 << 10

// keepPendingBuf is the largest pending buffer returned to the pool.
const keepPendingBuf = 256 << 10

// pendingPool holds frame buffers between flushes of every session, so
// that an idle session keeps none of its own.
var pendingPool = sync.Pool{New: func() any { return new([]byte) }}

// frameWriter writes one session's frames to its stream, coalescing: a
// caller that finds no write in progress writes its frames at once (no
// frame waits for company), and while that write is in progress the
// frames other goroutines (the reply queue, the pusher, ephemeral
// pushes) add go out together in the next one. Under load several
// SendOKs and Deliveries therefore leave in one stream write, and so in
// as few QUIC packets as fit them, instead of one write each.
//
// A caller's frames are marshalled before write returns; a nil error
// means they are written or will be by the write in progress. The first
// stream error is kept: every later write returns it.
type frameWriter struct {
	w   io.Writer
	max int

	mu       sync.Mutex
	room     sync.Cond // broadcast when the flusher takes the pending frames, or stops
	pending  *[]byte   // frames waiting for the next stream write; nil when none
	flushing bool      // a caller is writing to the stream
	err      error

	writes atomic.Uint64 // stream writes (tests and benchmarks count them)
	frames atomic.Uint64 // frames written
}

func newFrameWriter(w io.Writer, max int) *frameWriter {
	if max <= 0 {
		max = wire.DefaultMaxFrame
	}
	fw := &frameWriter{w: w, max: max}
	fw.room.L = &fw.mu
	return fw
}

// WriteMessage writes f as one frame.
func (fw *frameWriter) WriteMessage(f *wire.ServerFrame) error { return fw.write(f) }

// write writes fs as consecutive frames, in this order and with no
// other caller's frame between them.
func (fw *frameWriter) write(fs ...*wire.ServerFrame) error {
	fw.mu.Lock()
	for fw.err == nil && fw.pending != nil && len(*fw.pending) >= maxPendingBytes {
		fw.room.Wait()
	}
	if fw.err != nil {
		err := fw.err
		fw.mu.Unlock()
		return err
	}
	if err := fw.appendLocked(fs); err != nil {
		fw.mu.Unlock()
		return err
	}
	fw.frames.Add(uint64(len(fs)))
	if fw.flushing {
		fw.mu.Unlock() // the write in progress takes them next
		return nil
	}
	fw.flushing = true
	err := fw.flushLocked(callerRounds)
	fw.mu.Unlock()
	return err
}

// callerRounds is how many stream writes a caller that found no write in
// progress makes at most: its own frames, then what others added
// meanwhile. If frames are still waiting after that, a goroutine writes
// them, so that a pusher or reply queue is not kept writing others'
// frames for as long as they keep coming.
const callerRounds = 2

// flushLocked writes the pending frames, in at most rounds stream writes
// (0: until none are left); if frames are left, a goroutine takes over
// the flush. It is called, and returns, with mu held and flushing set
// by the caller; it clears flushing when it is done.
func (fw *frameWriter) flushLocked(rounds int) error {
	for n := 0; fw.pending != nil && fw.err == nil; n++ {
		if rounds > 0 && n == rounds {
			workers.Go(fw.carryOn) // flushing stays set: the goroutine owns the flush
			return nil
		}
		p := fw.pending
		fw.pending = nil
		fw.room.Broadcast()
		fw.mu.Unlock()
		_, err := fw.w.Write(*p)
		fw.writes.Add(1)
		putPending(p)
		fw.mu.Lock()
		if err != nil {
			fw.err = fmt.Errorf("wire: write frame: %w", err)
		}
	}
	fw.flushing = false
	if fw.pending != nil { // the stream failed: nothing more goes out
		putPending(fw.pending)
		fw.pending = nil
	}
	fw.room.Broadcast()
	return fw.err
}

// carryOn finishes a flush a caller left after callerRounds.
func (fw *frameWriter) carryOn() {
	fw.mu.Lock()
	fw.flushLocked(0)
	fw.mu.Unlock()
}

// drain waits until the frames written so far have left (or the stream
// failed).
func (fw *frameWriter) drain() {
	fw.mu.Lock()
	for fw.flushing && fw.err == nil {
		fw.room.Wait()
	}
	fw.mu.Unlock()
}

// appendLocked marshals fs onto the pending buffer; on an error nothing
// of fs is kept.
func (fw *frameWriter) appendLocked(fs []*wire.ServerFrame) error {
	if fw.pending == nil {
		fw.pending = pendingPool.Get().(*[]byte)
	}
	b := *fw.pending
	n0 := len(b)
	for _, m := range fs {
		size := proto.Size(m)
		if size > fw.max {
			*fw.pending = b[:n0]
			fw.dropEmptyLocked()
			return fmt.Errorf("%w: %d > %d bytes", wire.ErrFrameTooLarge, size, fw.max)
		}
		b = binary.AppendUvarint(b, uint64(size))
		var err error
		// The size was just computed: marshalling reuses it.
		b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
		if err != nil {
			*fw.pending = b[:n0]
			fw.dropEmptyLocked()
			return fmt.Errorf("wire: encode frame: %w", err)
		}
	}
	*fw.pending = b
	return nil
}

func (fw *frameWriter) dropEmptyLocked() {
	if len(*fw.pending) == 0 {
		putPending(fw.pending)
		fw.pending = nil
	}
}

// putPending returns p to the pool unless it grew large.
func putPending(p *[]byte) {
	if cap(*p) > keepPendingBuf {
		*p = nil
	}
	*p = (*p)[:0]
	pendingPool.Put(p)
}
