package homeserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"google.golang.org/protobuf/proto"

	"hearth/federation"
	"hearth/federation/fedwire"
)

// h3To is an HTTP/3 client of n's federation endpoint.
func h3To(t *testing.T, n *fedNode) *http3.Transport {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(n.caPEM)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: n.domain, RootCAs: pool, NextProtos: []string{http3.NextProtoH3}}}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// slowPost posts a body that is never sent (a pipe nobody writes until
// the test ends) from origin; it returns the result and how long it took.
func slowPost(ctx context.Context, tr *http3.Transport, n *fedNode, origin, keyID string, pw *io.PipeReader) (*fedwire.TransactionResult, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+n.addr+federation.PathTransaction, pw)
	req.Header.Set(federation.HeaderOrigin, origin)
	req.Header.Set(federation.HeaderKeyID, keyID)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	res := &fedwire.TransactionResult{}
	return res, proto.Unmarshal(b, res)
}

// TestFederationBodiesBounded, on a real server over QUIC: 24 requests
// from an origin whose keys cannot be had (not pinned, no server) with
// bodies that never arrive are all answered at once without their bodies
// (the senders never wrote a byte); from a pinned origin, at most
// MaxBodiesPerOrigin slow bodies are being read, and the others are
// answered CODE_UNAVAILABLE at once.
func TestFederationBodiesBounded(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	a.stop()
	a.cfg.Federation.MaxBodiesPerOrigin = 3
	a.start()
	pinAll(t, a, b)
	tr := h3To(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var writers []*io.PipeWriter
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	post := func(origin, keyID string) func() (*fedwire.TransactionResult, error) {
		r, w := io.Pipe() // made before the goroutines start
		writers = append(writers, w)
		return func() (*fedwire.TransactionResult, error) { return slowPost(ctx, tr, a, origin, keyID, r) }
	}
	keyID := string(b.skey.ID())

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[fedwire.Code]int{}
	var pipes []func() (*fedwire.TransactionResult, error)
	for range 24 {
		pipes = append(pipes, post("stranger.example", keyID))
	}
	for _, p := range pipes {
		wg.Go(func() {
			res, err := p()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			codes[res.Code]++
		})
	}
	wg.Wait()
	if codes[fedwire.Code_CODE_BAD_SIGNATURE] != 24 || time.Since(start) > 10*time.Second {
		t.Fatalf("unknown origin: %v after %s, want 24 × CODE_BAD_SIGNATURE at once", codes, time.Since(start))
	}

	// A pinned origin: 3 slow bodies are held, 7 refused at once.
	codes = map[fedwire.Code]int{}
	pipes = pipes[:0]
	for range 10 {
		pipes = append(pipes, post(b.domain, keyID))
	}
	var held sync.WaitGroup
	for _, p := range pipes {
		held.Go(func() {
			res, err := p()
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				codes[res.Code]++
			}
		})
	}
	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return codes[fedwire.Code_CODE_UNAVAILABLE] >= 7
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	if codes[fedwire.Code_CODE_UNAVAILABLE] != 7 || len(codes) != 1 {
		t.Errorf("pinned origin while 3 bodies are slow: %v, want 7 × CODE_UNAVAILABLE and 3 waiting", codes)
	}
	mu.Unlock()
	cancel()
	held.Wait()
}

// TestFederationSlowBodyTimesOut: a body that never arrives from a pinned
// origin holds its slot only for BodyTimeout; then the request ends and
// the slot is free again.
func TestFederationSlowBodyTimesOut(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	a.stop()
	a.cfg.Federation.MaxBodiesPerOrigin, a.cfg.Federation.BodyTimeout = 1, 500*time.Millisecond
	a.start()
	pinAll(t, a, b)
	tr := h3To(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, w := io.Pipe()
	defer w.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		slowPost(ctx, tr, a, b.domain, string(b.skey.ID()), r) // answered or reset: either ends it
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a slow body held its request past BodyTimeout")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("ended after %s, before BodyTimeout", d)
	}
	// The slot is free: a second slow body is read (not refused at once).
	r2, w2 := io.Pipe()
	defer w2.Close()
	res, err := slowPost(ctx, tr, a, b.domain, string(b.skey.ID()), r2)
	if err == nil && res.Code == fedwire.Code_CODE_UNAVAILABLE {
		t.Fatalf("slot still held: %v %s", res.Code, res.Message)
	}
}
