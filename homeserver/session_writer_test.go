package homeserver

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// gatedWriter records each Write; while gate is set, every Write first
// waits for a value on it (a stream blocked by flow control).
type gatedWriter struct {
	mu     sync.Mutex
	writes [][]byte
	gate   chan struct{}
	in     chan struct{} // receives once per Write entered (if set)
	err    error
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	if w.in != nil {
		w.in <- struct{}{}
	}
	if w.gate != nil {
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

// frames decodes everything written, in order.
func (w *gatedWriter) frames(t *testing.T) []*wire.ServerFrame {
	t.Helper()
	w.mu.Lock()
	all := bytes.Join(w.writes, nil)
	w.mu.Unlock()
	fr := wire.NewFrameReader(bytes.NewReader(all), 0)
	var out []*wire.ServerFrame
	for {
		f := &wire.ServerFrame{}
		if err := fr.ReadMessage(f); err != nil {
			return out
		}
		out = append(out, f)
	}
}

func (w *gatedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

func pong(id uint64) *wire.ServerFrame {
	return &wire.ServerFrame{Id: id, Body: &wire.ServerFrame_Pong{Pong: &wire.Pong{ServerTimeMs: int64(id)}}}
}

// A lone frame is written at once, by its caller: nothing waits for company.
func TestFrameWriterLoneFrameAtOnce(t *testing.T) {
	w := &gatedWriter{}
	fw := newFrameWriter(w, 0)
	for i := range 3 {
		if err := fw.WriteMessage(pong(uint64(i + 1))); err != nil {
			t.Fatal(err)
		}
		if got := w.count(); got != i+1 {
			t.Fatalf("after frame %d: %d stream writes, want %d (written before WriteMessage returns)", i+1, got, i+1)
		}
	}
	if got := fw.writes.Load(); got != 3 {
		t.Fatalf("writes counter %d, want 3", got)
	}
}

// Frames added while a write is in progress leave together in the next
// write, in the order they were added, each caller's batch contiguous.
func TestFrameWriterCoalescesDuringWrite(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{}), in: make(chan struct{}, 100)}
	fw := newFrameWriter(w, 0)
	first := make(chan error, 1)
	go func() { first <- fw.WriteMessage(pong(1)) }()
	<-w.in // the first write is in progress (blocked)
	const writers = 8
	for g := range writers {
		// Each returns at once: its frames wait for the write in progress.
		base := uint64(100 * (g + 1))
		if err := fw.write(pong(base), pong(base+1), pong(base+2)); err != nil {
			t.Fatal(err)
		}
	}
	w.gate <- struct{}{} // first write done
	<-w.in               // the flusher's second write
	w.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := w.count(); got != 2 {
		t.Fatalf("%d stream writes, want 2 (one frame, then the %d that waited)", got, writers*3)
	}
	fs := w.frames(t)
	if len(fs) != 1+writers*3 {
		t.Fatalf("%d frames decoded, want %d", len(fs), 1+writers*3)
	}
	if fs[0].Id != 1 {
		t.Fatalf("first frame id %d", fs[0].Id)
	}
	for g := range writers {
		base := uint64(100 * (g + 1))
		for k := range 3 {
			if got := fs[1+3*g+k].Id; got != base+uint64(k) {
				t.Fatalf("frame %d: id %d, want %d", 1+3*g+k, got, base+uint64(k))
			}
		}
	}
	if got := fw.frames.Load(); got != 1+writers*3 {
		t.Fatalf("frames counter %d", got)
	}
	fw.mu.Lock()
	idle := fw.pending == nil && !fw.flushing
	fw.mu.Unlock()
	if !idle {
		t.Fatal("writer holds a buffer or a flush after everything was written")
	}
}

// A stream error is returned to the writer that met it and to every later one.
func TestFrameWriterErrorSticks(t *testing.T) {
	boom := errors.New("stream reset")
	w := &gatedWriter{err: boom}
	fw := newFrameWriter(w, 0)
	if err := fw.WriteMessage(pong(1)); !errors.Is(err, boom) {
		t.Fatalf("first write: %v, want %v", err, boom)
	}
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
	if err := fw.WriteMessage(pong(2)); !errors.Is(err, boom) {
		t.Fatalf("after the failure: %v, want %v", err, boom)
	}
	if n := w.count(); n != 0 {
		t.Fatalf("%d writes reached the stream after it failed", n)
	}
}

// A frame over the limit is refused without breaking the writer.
func TestFrameWriterTooLarge(t *testing.T) {
	w := &gatedWriter{}
	fw := newFrameWriter(w, 64)
	big := &wire.ServerFrame{Id: 1, Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Payload: make([]byte, 100)}}}
	if err := fw.write(pong(1), big); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if err := fw.WriteMessage(pong(2)); err != nil {
		t.Fatal(err)
	}
	fs := w.frames(t)
	if len(fs) != 1 || fs[0].Id != 2 {
		t.Fatalf("written %v, want only frame 2 (nothing of the refused batch)", fs)
	}
}

// While a write is blocked, writers may queue up to maxPendingBytes; past
// that they wait for the stream.
func TestFrameWriterBackpressure(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{}), in: make(chan struct{}, 100)}
	fw := newFrameWriter(w, 0)
	go fw.WriteMessage(pong(1))
	<-w.in
	payload := make([]byte, 32<<10)
	d := func(seq uint64) *wire.ServerFrame {
		return &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: seq, Payload: payload}}}
	}
	n := maxPendingBytes / len(payload)
	for i := range n {
		if err := fw.WriteMessage(d(uint64(i + 1))); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- fw.WriteMessage(d(uint64(n + 1))) }()
	select {
	case err := <-blocked:
		t.Fatalf("a write past %d pending bytes returned (%v) while the stream was blocked", maxPendingBytes, err)
	case <-time.After(50 * time.Millisecond):
	}
	w.gate <- struct{}{} // the first write finishes; the flusher takes the pending frames
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	close(w.gate)
	fw.drain()
	if got := len(w.frames(t)); got != n+2 {
		t.Fatalf("%d frames written, want %d", got, n+2)
	}
}

// Concurrent writers: every frame arrives once, each writer's in order.
func TestFrameWriterConcurrent(t *testing.T) {
	w := &gatedWriter{}
	fw := newFrameWriter(w, 0)
	const writers, each = 6, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := fw.WriteMessage(pong(uint64(g*each + i + 1))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	fw.drain()
	next := make([]uint64, writers)
	fs := w.frames(t)
	if len(fs) != writers*each {
		t.Fatalf("%d frames, want %d", len(fs), writers*each)
	}
	for _, f := range fs {
		g := int((f.Id - 1) / each)
		if want := uint64(g*each) + next[g] + 1; f.Id != want {
			t.Fatalf("writer %d: frame %d after %d", g, f.Id, want-1)
		}
		next[g]++
	}
	t.Logf("%d frames in %d stream writes", len(fs), w.count())
}

// A caller that found no write in progress makes at most callerRounds
// stream writes; frames still added after that are written by a
// goroutine, so the caller (a pusher, a reply queue) is not kept busy
// writing other goroutines' frames.
func TestFrameWriterCallerHandsOver(t *testing.T) {
	w := &gatedWriter{gate: make(chan struct{}), in: make(chan struct{}, 100)}
	fw := newFrameWriter(w, 0)
	done := make(chan error, 1)
	go func() { done <- fw.WriteMessage(pong(1)) }()
	id := uint64(1)
	for range callerRounds {
		<-w.in // a write of the caller is in progress: add a frame for the next one
		id++
		if err := fw.WriteMessage(pong(id)); err != nil {
			t.Fatal(err)
		}
		w.gate <- struct{}{}
	}
	// The caller made its callerRounds writes: it returns with a frame
	// still waiting, which another goroutine writes.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller is still writing frames others added after its own")
	}
	if got := w.count(); got != callerRounds {
		t.Fatalf("%d writes when the caller returned, want %d", got, callerRounds)
	}
	<-w.in
	w.gate <- struct{}{}
	fw.drain()
	fs := w.frames(t)
	if len(fs) != int(id) {
		t.Fatalf("%d frames written, want %d", len(fs), id)
	}
	for i, f := range fs {
		if f.Id != uint64(i+1) {
			t.Fatalf("frame %d has id %d", i, f.Id)
		}
	}
}
