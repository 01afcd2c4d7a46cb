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
	envIdleWS    = "HEARTH_IDLE_CLIENT_WS"
)

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
	opts := ctransport.DialOptions{RootCAs: roots, Sockets: pool, ForceWebSocket: os.Getenv(envIdleWS) != ""}
	var conns []io.Closer
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
		conns = append(conns, c)
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
type idleStreams struct{}

func (idleStreams) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	fr := wire.NewFrameReader(rwc, 0)
	for {
		if _, err := fr.ReadFrame(); err != nil {
			return
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkIdleSessionMemory reports the server's memory per idle session
// (heap and goroutine stacks, transport only: the StreamServer here just
// reads) for WebTransport and WebSocket. Run with -benchtime=1x;
// HEARTH_IDLE_SESSIONS sets the number of sessions (default 500).
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, ws := range []bool{false, true} {
		name := "webtransport"
		if ws {
			name = "websocket"
		}
		b.Run(name, func(b *testing.B) {
			n := 500
			if v, err := strconv.Atoi(os.Getenv("HEARTH_IDLE_SESSIONS")); err == nil && v > 0 {
				n = v // e.g. 2000; the default keeps the benchmark short
			}
			for b.Loop() {
				ts := startServer(b, Config{}, idleStreams{})
				b.ReportMetric(measureIdle(b, ts, n, ws), "B/session")
				ts.Close()
			}
		})
	}
}

func measureIdle(b *testing.B, ts *testServer, n int, ws bool) float64 {
	b.Helper()
	if os.Getenv("HEARTH_IDLE_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, so that small per-session items are attributed
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}
	before := heapInUse()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envIdleAddr+"="+ts.addr, envIdleCA+"="+ts.caPath, envIdleCount+"="+strconv.Itoa(n))
	if ws {
		cmd.Env = append(cmd.Env, envIdleWS+"=1")
	}
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
	for ts.Sessions() != n {
		time.Sleep(10 * time.Millisecond)
	}
	after := heapInUse()
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
	return float64(int64(after)-int64(before)) / float64(n)
}
