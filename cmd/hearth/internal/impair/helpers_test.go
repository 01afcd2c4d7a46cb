package impair

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"hearth/keys/testutil"
)

// waitFor waits until cond holds (keys/testutil.WaitFor), failing with what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
}

// sink is a UDP server on 127.0.0.1 that records the sequence numbers it
// receives and the source ports they came from; with echo it sends every
// datagram back.
type sink struct {
	conn  *net.UDPConn
	echo  bool
	mu    sync.Mutex
	seqs  []uint64
	ports map[int]int
	done  chan struct{}
}

func newSink(t *testing.T, echo bool) *sink {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{conn: c, echo: echo, ports: map[int]int{}, done: make(chan struct{})}
	go s.run()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

func (s *sink) run() {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		if n >= 8 {
			s.seqs = append(s.seqs, binary.BigEndian.Uint64(buf))
		}
		s.ports[from.Port]++
		s.mu.Unlock()
		if s.echo {
			s.conn.WriteToUDP(buf[:n], from)
		}
	}
}

func (s *sink) addr() string { return s.conn.LocalAddr().String() }

func (s *sink) received() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.seqs...)
}

func (s *sink) sourcePorts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ports)
}

// newUDPRelay starts a relay on 127.0.0.1:0 to upstream, closed at cleanup.
func newUDPRelay(t *testing.T, upstream string, cfg Config) *UDP {
	t.Helper()
	ln, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewUDP(ln, upstream, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dialRelay is a client socket connected to the relay.
func dialRelay(t *testing.T, r interface{ Addr() net.Addr }) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendSeq(t *testing.T, c *net.UDPConn, seq uint64) {
	t.Helper()
	b := make([]byte, 100)
	binary.BigEndian.PutUint64(b, seq)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// sendPaced sends seqs 0..n-1 in batches, waiting until the relay has read
// each batch, so that no socket buffer overflows on a loaded machine.
func sendPaced(t *testing.T, c *net.UDPConn, r *UDP, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		sendSeq(t, c, uint64(i))
		if i%20 == 19 || i == n-1 {
			want := uint64(i + 1)
			waitFor(t, 10*time.Second, "relay reads the batch", func() bool { return r.Stats().Up.PacketsIn >= want })
		}
	}
}

// settled waits until the goroutine count is back to at most n.
func settled(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivered waits until the relay has dealt with every datagram it read
// (sent, dropped, or duplicated and sent) and the sink received all it sent.
func delivered(t *testing.T, r *UDP, s *sink) {
	t.Helper()
	waitFor(t, 10*time.Second, "the relay's queue drains into the sink", func() bool {
		u := r.Stats().Up
		return u.PacketsOut+u.Dropped+u.Blackholed+u.Overflow == u.PacketsIn+u.Duplicated &&
			uint64(len(s.received())) >= u.PacketsOut
	})
}
