package transport

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	ctransport "hearth/client/transport"
	"hearth/homeserver/wire"
)

// The idle-session benchmark runs its clients in a child process (this
// test binary again, see TestMain) so that the parent's heap holds only
// the server side.
const (
	envIdleAddr  = "HEARTH_IDLE_CLIENT_ADDR"
	envIdleCA    = "HEARTH_IDLE_CLIENT_CA"
	envIdleCount = "HEARTH_IDLE_CLIENT_N"
	envIdleMode  = "HEARTH_IDLE_CLIENT_MODE" // idleModes
)

// The transports the idle sessions use.
var idleModes = []string{TransportQUIC, TransportWebTransport, TransportWebSocket}

func TestMain(m *testing.M) {
	if addr := os.Getenv(envIdleAddr); addr != "" {
		if err := idleClients(addr); err != nil {
			fmt.Fprintln(os.Stderr, "idle clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// idleClients opens N sessions sharing UDP sockets, says "ready", and holds
// them until standard input closes.
func idleClients(addr string) error {
	n, err := strconv.Atoi(os.Getenv(envIdleCount))
	if err != nil {
		return err
	}
	b, err := os.ReadFile(os.Getenv(envIdleCA))
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	pool := ctransport.NewSocketPool(200)
	defer pool.Close()
	opts := ctransport.DialOptions{RootCAs: roots, Sockets: pool}
	switch mode := os.Getenv(envIdleMode); mode {
	case TransportQUIC:
		opts.QUICOnly = true
	case TransportWebTransport:
		opts.WebTransportOnly = true
	case TransportWebSocket:
		opts.ForceWebSocket = true
	default:
		return fmt.Errorf("unknown transport %q", mode)
	}
	var conns []*ctransport.Conn
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := ctransport.Dial(ctx, addr, opts)
		cancel()
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		if _, err := c.Write([]byte{0}); err != nil { // the client speaks first: one empty frame
			return err
		}
		conns = append(conns, c.(*ctransport.Conn))
	}
	// A 0-RTT dial returns before its handshake completed; wait until every
	// stream is final (redialled when a handshake failed under load).
	for _, c := range conns {
		<-c.Settled()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// idleStreams holds each session open, reading frames until it ends, like
// a homeserver session waiting for its client (the same wire.FrameReader;
// io.Copy would hold an 8 KiB buffer per session that the server does not).
// It counts the sessions whose handshake completed: a native QUIC client
// with a session ticket writes its first frame as 0-RTT data, so a session
// is served while its TLS handshake (and that handshake's goroutine and
// buffers) is still in flight. With grow set, each session first uses
// 16 KiB of stack, as a homeserver session does answering a Login, before
// it waits.
type idleStreams struct {
	confirmed atomic.Int64
	grow      bool
}

// ServeStream keeps its own frame small, as homeserver.ServeStream does:
// the reader waits below it.
func (is *idleStreams) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	fr := is.start(ctx, rwc)
	if fr == nil {
		return
	}
	for {
		if _, err := fr.ReadFrame(); err != nil {
			return
		}
	}
}

//go:noinline
func (is *idleStreams) start(ctx context.Context, rwc io.ReadWriteCloser) *wire.FrameReader {
	if ec, ok := rwc.(EarlyConn); ok {
		select {
		case <-ec.HandshakeComplete():
		case <-ctx.Done():
			return nil
		}
	}
	if is.grow {
		useStack(16)
	}
	is.confirmed.Add(1)
	return wire.NewFrameReader(rwc, 0)
}

// useStack uses about n KiB of stack.
//
//go:noinline
func useStack(n int) byte {
	var b [1 << 10]byte
	b[n%len(b)] = byte(n)
	if n <= 1 {
		return b[0]
	}
	return useStack(n-1) + b[(n*7)%len(b)]
}

// inUse returns the heap and stack bytes in use after four collections
// (the second frees what the first found unreachable only through
// finalizers; each halves a stack that is less than a quarter used, so a
// 32 KiB one is back at 4 KiB after three) and the number of goroutines.
func inUse() (heap, live, stacks uint64, goroutines int) {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
}

// idleGrowth is the server's growth per idle session: heap is the heap
// spans in use (what the RSS holds), live the objects in them; the rest
// of heap is room in those spans that the objects of the sessions' set-up
// (handshakes) left free, which depends on how often the collector ran
// while sessions were opened (GOGC).
type idleGrowth struct{ heap, live, stacks, goroutines float64 }

// BenchmarkIdleSessionMemory reports the server's memory per idle session
// (heap and goroutine stacks, transport only: the StreamServer here just
// reads) and its goroutines per session, for native QUIC, WebTransport and
// the WebSocket. Run with -benchtime=1x on an idle machine;
// HEARTH_IDLE_SESSIONS sets the number of sessions (default 500).
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, mode := range idleModes {
		b.Run(mode, func(b *testing.B) {
			n := 500
			if v, err := strconv.Atoi(os.Getenv("HEARTH_IDLE_SESSIONS")); err == nil && v > 0 {
				n = v // e.g. 2000; the default keeps the benchmark short
			}
			for b.Loop() {
				is := &idleStreams{}
				ts := startServer(b, Config{}, is)
				m := measureIdle(b, ts, is, n, mode)
				b.ReportMetric(m.heap+m.stacks, "B/session")
				b.ReportMetric(m.heap, "heapB/session")
				b.ReportMetric(m.live, "liveB/session")
				b.ReportMetric(m.stacks, "stackB/session")
				b.ReportMetric(m.goroutines, "goroutines/session")
				ts.Close()
			}
		})
	}
}

// TestIdleSessionGoroutines counts the server's goroutines per idle
// session (20 sessions from a child process, counted by
// runtime.NumGoroutine before and after): a native QUIC session needs
// far fewer than a WebTransport one, whose HTTP/3 and WebTransport layers
// park goroutines of their own (docs/transport.md). Bytes per session need
// an idle machine: BenchmarkIdleSessionMemory.
func TestIdleSessionGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process with 60 sessions (≈ 2 s)")
	}
	per := map[string]float64{}
	for _, mode := range idleModes {
		is := &idleStreams{}
		ts := startServer(t, Config{}, is)
		per[mode] = measureIdle(t, ts, is, 20, mode).goroutines
		ts.Close()
	}
	t.Logf("server goroutines per idle session: quic %.2f, webtransport %.2f, websocket %.2f",
		per[TransportQUIC], per[TransportWebTransport], per[TransportWebSocket])
	// Native QUIC: quic-go's two per connection (Conn.run, sendQueue.Run)
	// and the session's reader, nothing else once the handshake completed
	// (measureIdle waits for that); the WebSocket: the reader alone.
	if per[TransportQUIC] > 3 || per[TransportQUIC] >= per[TransportWebTransport]/2 {
		t.Errorf("native QUIC: %.2f goroutines per session, want at most 3 and under half of WebTransport's %.2f",
			per[TransportQUIC], per[TransportWebTransport])
	}
	if per[TransportWebSocket] > 1 {
		t.Errorf("WebSocket: %.2f goroutines per session, want at most 1", per[TransportWebSocket])
	}
}

// TestIdleSessionStacks: an idle native QUIC session whose reader once
// used 16 KiB of stack (as answering a Login does) costs the server at
// most 4 KiB of stack per goroutine once collections have shrunk it. The
// runtime halves a parked goroutine's stack only while less than a
// quarter of it is in use, counting 800 bytes of guard, so the reader
// must wait under 1,248 bytes deep to get back to 4 KiB: quic-go's read
// takes about 540 of them, serveSession, the StreamServer's loop and
// wire.FrameReader the rest. A frame more beneath the wait leaves every
// idle reader at 8 KiB, which this test catches (200 sessions from a
// child process).
func TestIdleSessionStacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process with 200 sessions")
	}
	is := &idleStreams{grow: true}
	ts := startServer(t, Config{}, is)
	m := measureIdle(t, ts, is, 200, TransportQUIC)
	t.Logf("per idle native session: %.0f B of stack, %.2f goroutines", m.stacks, m.goroutines)
	if limit := 3*4096 + 2048.0; m.stacks > limit {
		t.Errorf("%.0f B of stack per idle native session, want at most %.0f (3 goroutines of 4 KiB)", m.stacks, limit)
	}
}

// measureIdle opens n idle sessions over mode from a child process and
// returns the server's growth per session, taken once every session's
// handshake completed.
func measureIdle(b testing.TB, ts *testServer, is *idleStreams, n int, mode string) idleGrowth {
	b.Helper()
	if os.Getenv("HEARTH_IDLE_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 4 << 10 // fine enough to attribute small per-session items, fast enough under load
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}
	h0, l0, s0, g0 := inUse()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envIdleAddr+"="+ts.addr, envIdleCA+"="+ts.caPath, envIdleCount+"="+strconv.Itoa(n), envIdleMode+"="+mode)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("client process: %q, %v", line, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ts.Sessions() != n || ts.SessionsByTransport()[mode] != n || is.confirmed.Load() != int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d sessions, %d over %s, %d handshakes completed; want %d", ts.Sessions(), ts.SessionsByTransport()[mode], mode, is.confirmed.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h1, l1, s1, g1 := inUse()
	if p := os.Getenv("HEARTH_IDLE_HEAP_PROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
			g, _ := os.Create(p + ".goroutines")
			pprof.Lookup("goroutine").WriteTo(g, 1)
			g.Close()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.Logf("heap in use %d, stacks %d, goroutines %d", ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
	}
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / float64(n) }
	return idleGrowth{heap: per(h0, h1), live: per(l0, l1), stacks: per(s0, s1), goroutines: float64(g1-g0) / float64(n)}
}
