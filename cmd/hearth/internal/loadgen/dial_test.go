package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDialRetryBounds: many dials at once never have more than
// DialConcurrency attempts in flight, and failed attempts are retried and
// counted.
func TestDialRetryBounds(t *testing.T) {
	const limit = 3
	f := &Fleet{cfg: Config{DialConcurrency: limit}, dialSem: make(chan struct{}, limit)}
	var inFlight, peak, calls atomic.Int64
	var tried sync.Map // addr → attempted once: the first attempt of each dial fails
	dial := func(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		calls.Add(1)
		if _, again := tried.LoadOrStore(addr, true); !again {
			return nil, errors.New("refused")
		}
		return nopConn{}, nil
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := f.dialRetry(context.Background(), dial, fmt.Sprintf("h%d:1", i), ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p < 2 {
		t.Errorf("peak %d dials in flight, want 2..%d", p, limit)
	}
	if r, c := f.DialRetries(), calls.Load(); r != 20 || c != 40 {
		t.Errorf("%d retries counted, %d attempts for 20 dials failing once each; want 20 and 40", r, c)
	}
}

type nopConn struct{}

func (nopConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
func (nopConn) Close() error                { return nil }
