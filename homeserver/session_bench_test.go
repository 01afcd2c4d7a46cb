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
	const n = 500
	for b.Loop() {
		h := newHarness(b, Config{AuthTimeout: -1})
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
		waitOnline(b, h.s, 0)
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
		waitOnline(b, h.s, n)
		time.Sleep(200 * time.Millisecond) // the Sync answers and first (empty) push passes finish
		heap1, stack1, g1 := liveMemory()
		if p := os.Getenv("HEARTH_IDLE_HEAP_PROFILE"); p != "" { // with -memprofilerate 512 or so
			if f, err := os.Create(p); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		b.ReportMetric(float64(heap1-heap0)/n, "heap-B/session")
		b.ReportMetric(float64(stack1-stack0)/n, "stack-B/session")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/session")
		for _, c := range conns {
			c.Close()
		}
	}
}

func waitOnline(b *testing.B, s *Server, n int) {
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

// liveMemory returns the live heap and goroutine stacks after two
// collections, and the number of goroutines.
func liveMemory() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}
