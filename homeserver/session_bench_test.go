package homeserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// BenchmarkIdleSessionState reports the homeserver's own memory per idle
// session: authenticated (Hello), synced, nothing to deliver, over
// net.Pipe so that no transport is counted. It includes the client side
// of each pipe: one goroutine reading into a 512-byte buffer. Run with
// -benchtime 1x.
func BenchmarkIdleSessionState(b *testing.B) {
	for b.Loop() {
		m := idleSessionState(b, 500)
		b.ReportMetric(m.heap, "heap-B/session")
		b.ReportMetric(m.stack, "stack-B/session")
		b.ReportMetric(m.goroutines, "goroutines/session")
	}
}

// TestIdleSessionStack: once idle, a session that answered Hello and Sync
// has its reader's stack back at 4 KiB: the reader waits in shallow
// frames (ServeStream), so collections can shrink what the requests grew.
// With the reader waiting deeper the stack stays at 8 KiB per session
// (9.5–10.7 KB per session here with the pipe's client reader, against 4.9–6.2).
func TestIdleSessionStack(t *testing.T) {
	m := idleSessionState(t, 100)
	t.Logf("per idle session: %.0f B of stack, %.0f B of heap, %.2f goroutines (with the pipe's client reader)", m.stack, m.heap, m.goroutines)
	if limit := 4096 + 4096.0; m.stack > limit {
		t.Errorf("%.0f B of stack per idle session with its pipe's client reader, want at most %.0f", m.stack, limit)
	}
}

// TestIdleSessionHeap: an authenticated, synced, idle session (over
// net.Pipe, with the pipe and its client reader) holds at most
// maxIdleSessionHeap bytes of live heap. With a context of its own per
// pusher, a reply queue and a signal queue made at the start, a map per
// router subscription and an entry in the registry's map of authenticated
// sessions it held 6,100–6,130 B here (c3754ee); 5,170–5,210 B without.
// 300 sessions, so that what the first ones add once (prepared
// statements, protobuf tables) weighs little.
func TestIdleSessionHeap(t *testing.T) {
	m := idleSessionState(t, 300)
	t.Logf("per idle session: %.0f B of heap, %.0f B of stack, %.2f goroutines (with the pipe and its client reader)", m.heap, m.stack, m.goroutines)
	if m.heap > maxIdleSessionHeap {
		t.Errorf("%.0f B of live heap per idle session with its pipe, want at most %d", m.heap, maxIdleSessionHeap)
	}
}

// maxIdleSessionHeap bounds TestIdleSessionHeap.
const maxIdleSessionHeap = 5700

type idleState struct{ heap, stack, goroutines float64 }

// idleSessionState opens n idle sessions over net.Pipe (Hello, Sync) and
// returns the growth per session; the pipes' client readers are counted.
func idleSessionState(tb testing.TB, n int) idleState {
	h := newHarness(tb, Config{AuthTimeout: -1})
	tokens := make([]string, n)
	// Each device from its own loopback address, so that the
	// per-address login and Hello limits leave them all through.
	addr := func(i int) string { return fmt.Sprintf("127.1.%d.%d:9", i/256, i%256) }
	for i := range n {
		h.from = addr(i)
		c, _ := h.firstDevice(fmt.Sprint("m", i))
		tokens[i] = c.access
		c.conn.Close()
	}
	waitOnline(tb, h.s, 0)
	heap0, stack0, g0 := liveMemory()
	conns := make([]net.Conn, n)
	for i := range n {
		srv, cli := net.Pipe()
		conns[i] = cli
		go h.s.ServeStream(context.Background(), srv, addr(i))
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := cli.Read(buf); err != nil {
					return
				}
			}
		}()
		fw := wire.NewFrameWriter(cli, 0)
		fw.WriteMessage(&wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: tokens[i]}}})
		fw.WriteMessage(&wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{}}})
	}
	waitOnline(tb, h.s, n)
	time.Sleep(200 * time.Millisecond) // the Sync answers and first (empty) push passes finish
	heap1, stack1, g1 := liveMemory()
	if p := os.Getenv("HEARTH_IDLE_HEAP_PROFILE"); p != "" { // with -memprofilerate 512 or so
		if f, err := os.Create(p); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	for _, c := range conns {
		c.Close()
	}
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	return idleState{heap: per(heap0, heap1), stack: per(stack0, stack1), goroutines: float64(g1-g0) / float64(n)}
}

func waitOnline(b testing.TB, s *Server, n int) {
	b.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, err := s.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.OnlineSessions == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions online, want %d", st.OnlineSessions, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveMemory returns the live heap and goroutine stacks after four
// collections (each halves a parked stack less than a quarter used), and
// the number of goroutines.
func liveMemory() (heap, stack uint64, goroutines int) {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}
