package impair

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoTCP is a TCP server on 127.0.0.1 that echoes each connection.
func echoTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}

func newTCPRelay(t *testing.T, upstream string, cfg Config) *TCP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewTCP(l, upstream, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// roundTrip writes msg and reads it back, returning how long it took.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes changed on the way")
	}
	return time.Since(start)
}

// TestTCPImpairments: bytes arrive intact and in order whatever the
// impairment; delay, loss (as retransmission delay) and blackouts show up
// as time, never as missing bytes.
func TestTCPImpairments(t *testing.T) {
	up := echoTCP(t)
	big := make([]byte, 1<<20)
	rand.Read(big)
	for _, tc := range []struct {
		name    string
		cfg     Config
		minRTT  time.Duration // of a small message
		delayed bool
	}{
		{"plain", Config{}, 0, false},
		{"delay 50ms", Config{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}, 80 * time.Millisecond, false},
		{"loss 0.5", Config{Loss: 0.5, Seed: 1}, 0, true},
		{"rate 4 MB/s", Config{RateBytesPerSec: 4 << 20}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTCPRelay(t, up, tc.cfg)
			c, err := net.Dial("tcp", r.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			small := roundTrip(t, c, []byte("ping"))
			if small < tc.minRTT {
				t.Errorf("round trip %v, want at least %v", small, tc.minRTT)
			}
			bulk := roundTrip(t, c, big)
			want := uint64(len(big) + 4)
			waitFor(t, 5*time.Second, "counters catch up", func() bool { // the client may read before the relay counts
				st := r.Stats()
				return st.Flows == 1 && st.Up.BytesIn == want && st.Up.BytesOut == want && st.Down.BytesOut == want
			})
			st := r.Stats()
			if tc.delayed && st.Up.Delayed+st.Down.Delayed == 0 {
				t.Error("nothing delayed by loss")
			}
			t.Logf("ping %v, 1 MiB echoed in %v; %+v", small, bulk, st.Up)
		})
	}
}

// TestTCPBlackoutHoldsData: a message written during a blackout arrives
// after it ends, whole.
func TestTCPBlackoutHoldsData(t *testing.T) {
	up := echoTCP(t)
	r := newTCPRelay(t, up, Config{Blackout: Blackout{Every: 2 * time.Second, For: time.Second}})
	c, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, []byte("before")) // link up for the first second
	waitFor(t, 5*time.Second, "relay accepted", func() bool { return r.Stats().Flows == 1 })
	time.Sleep(1300 * time.Millisecond) // inside the blackout (1 s – 2 s)
	d := roundTrip(t, c, []byte("during"))
	if d < 300*time.Millisecond {
		t.Errorf("message during the blackout came back after %v", d)
	}
	if r.Stats().Up.Delayed == 0 {
		t.Error("nothing held by the blackout")
	}
	t.Logf("echo through a blackout after %v", d)
}

func TestTCPCloseFreesEverything(t *testing.T) {
	up := echoTCP(t)
	base := runtime.NumGoroutine()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewTCP(l, up, Config{Delay: 500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", r.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("in flight when the relay closes"))
		conns = append(conns, c)
	}
	waitFor(t, 10*time.Second, "four connections", func() bool { return r.Stats().Flows == 4 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// Closed means EOF, or a reset when the relay closed its side
		// with bytes it had not read yet (the kernel answers with RST);
		// a timeout means the relay left the connection open.
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client connection not closed by the relay: %v", err)
		}
		c.Close()
	}
	settled(t, base+2) // the echo server's goroutines for connections it has not yet seen close
}
