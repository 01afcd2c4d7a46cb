package federation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// slowBody is a request body that counts the readers inside Read and
// blocks there until released; it records whether it was read at all.
type slowBody struct {
	read    atomic.Bool
	inside  *atomic.Int32
	maxSeen *atomic.Int32
	release chan struct{}
	size    int
}

func (b *slowBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	n := b.inside.Add(1)
	for {
		m := b.maxSeen.Load()
		if n <= m || b.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	<-b.release
	b.inside.Add(-1)
	if b.size <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), b.size)
	b.size -= k
	return k, nil
}

func slowPost(h http.Handler, origin string, body *slowBody, length int64) *fedwire.TransactionResult {
	req := httptest.NewRequest(http.MethodPost, PathTransaction, body)
	req.ContentLength = length
	if origin != "" {
		req.Header.Set(HeaderOrigin, origin)
	}
	req.Header.Set(HeaderKeyID, "ed25519:AAAAAAAAAAA")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := &fedwire.TransactionResult{}
	proto.Unmarshal(rec.Body.Bytes(), res)
	if rec.Code == http.StatusRequestEntityTooLarge {
		res.Code = fedwire.Code_CODE_TOO_LARGE
	}
	return res
}

// TestHandlerRefusesBeforeReading: requests with no origin header, from an
// origin whose keys cannot be had, from a denied origin, or declaring a
// body over the limit are refused without a byte of their body read, however
// many arrive at once.
func TestHandlerRefusesBeforeReading(t *testing.T) {
	now := time.Now()
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, in := newTestHandler(k, now, &log)
	var inside, maxSeen atomic.Int32
	release := make(chan struct{})
	defer close(release)
	cases := []struct {
		origin string
		length int64
		want   fedwire.Code
	}{
		{"", 1 << 20, fedwire.Code_CODE_BAD_REQUEST},
		{"stranger.example", DefaultMaxTransactionBytes, fedwire.Code_CODE_UNAVAILABLE}, // its keys cannot be had (now)
		{"evil.example", 1 << 20, fedwire.Code_CODE_FORBIDDEN},
		{"a.example", DefaultMaxTransactionBytes + 1<<20, fedwire.Code_CODE_TOO_LARGE},
	}
	for _, c := range cases {
		const n = 24
		var wg sync.WaitGroup
		bodies := make([]*slowBody, n)
		codes := make([]fedwire.Code, n)
		for i := range n {
			bodies[i] = &slowBody{inside: &inside, maxSeen: &maxSeen, release: release, size: int(c.length)}
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i] = slowPost(h, c.origin, bodies[i], c.length).Code
			}()
		}
		wg.Wait() // nobody blocks: nothing is read
		for i := range n {
			if codes[i] != c.want || bodies[i].read.Load() {
				t.Fatalf("origin %q: answered %v (want %v), body read: %v", c.origin, codes[i], c.want, bodies[i].read.Load())
			}
		}
	}
	if in.txns != 0 {
		t.Fatalf("inbound reached %d times", in.txns)
	}
}

// TestHandlerBoundsBodiesInFlight: slow bodies from a known origin hold at
// most MaxBodiesPerOrigin reads at once, and all origins together at most
// MaxBodies; the requests over the bound are answered CODE_UNAVAILABLE
// (retry) at once, unread. Once the slow bodies end, slots are free again.
func TestHandlerBoundsBodiesInFlight(t *testing.T) {
	now := time.Now()
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, _ := newTestHandler(k, now, &log)
	h.Verifier.Keys = staticKeys{"a.example": setOf(k), "c.example": setOf(k), "d.example": setOf(k)}
	h.MaxBodiesPerOrigin, h.MaxBodies = 3, 5
	var inside, maxSeen atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var unavailable atomic.Int32
	var bodies []*slowBody
	start := func(origin string, n int) {
		for range n {
			b := &slowBody{inside: &inside, maxSeen: &maxSeen, release: release, size: 1 << 20}
			bodies = append(bodies, b)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if slowPost(h, origin, b, 1<<20).Code == fedwire.Code_CODE_UNAVAILABLE {
					if b.read.Load() {
						t.Error("a refused body was read")
					}
					unavailable.Add(1)
				}
			}()
		}
	}
	wait := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for inside.Load()+unavailable.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d reading + %d refused, want %d", inside.Load(), unavailable.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	start("a.example", 10)
	wait(10)
	if got := inside.Load(); got != 3 {
		t.Fatalf("%d bodies of one origin read at once, want 3", got)
	}
	start("c.example", 10)
	start("d.example", 10)
	wait(30)
	if got := inside.Load(); got != 5 {
		t.Fatalf("%d bodies read at once, want the total bound 5", got)
	}
	close(release)
	wg.Wait()
	if m := maxSeen.Load(); m > 5 {
		t.Fatalf("at most %d bodies read at once, want <= 5", m)
	}
	if unavailable.Load() != 25 {
		t.Fatalf("%d refused, want 25", unavailable.Load())
	}
	// The slots were given back.
	if r, ok := h.takeSlot("a.example"); !ok {
		t.Fatal("no slot free after the bodies ended")
	} else {
		r()
	}
}

// TestHandlerOriginHeaderMustMatch: a body signed by a.example sent under
// another origin's header is refused.
func TestHandlerOriginHeaderMustMatch(t *testing.T) {
	now := time.Now()
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, in := newTestHandler(k, now, &log)
	h.Verifier.Keys = staticKeys{"a.example": setOf(k), "c.example": setOf(k)}
	st, _ := SignTransaction(k, &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "t", OriginTimeMs: now.UnixMilli()})
	body, _ := proto.Marshal(st)
	req := httptest.NewRequest(http.MethodPost, PathTransaction, bytes.NewReader(body))
	req.Header.Set(HeaderOrigin, "c.example")
	req.Header.Set(HeaderKeyID, st.KeyId)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := &fedwire.TransactionResult{}
	proto.Unmarshal(rec.Body.Bytes(), res)
	if res.Code != fedwire.Code_CODE_BAD_REQUEST || in.txns != 0 {
		t.Fatalf("mismatched origin header: %v %s (inbound %d)", res.Code, res.Message, in.txns)
	}
}

// TestSignalLabelSeparate: a transaction signed for PathTransaction is
// refused on PathSignal and a signal transaction on PathTransaction: each
// kind has its own signature label.
func TestSignalLabelSeparate(t *testing.T) {
	now := time.Now()
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, in := newTestHandler(k, now, &log)
	h.Limiter = nil
	signals := 0
	h.Signals = func(context.Context, *fedwire.Transaction) *fedwire.TransactionResult {
		signals++
		return &fedwire.TransactionResult{}
	}
	txn := &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "t", OriginTimeMs: now.UnixMilli()}
	asTxn, _ := SignTransaction(k, txn)
	asSig, _ := SignSignals(k, txn)
	bt, _ := proto.Marshal(asTxn)
	bs, _ := proto.Marshal(asSig)
	if _, res := post(h, PathSignal, bt); res.Code != fedwire.Code_CODE_BAD_SIGNATURE || signals != 0 {
		t.Fatalf("transaction signature on the signal path: %v", res.Code)
	}
	if _, res := post(h, PathTransaction, bs); res.Code != fedwire.Code_CODE_BAD_SIGNATURE || in.txns != 0 {
		t.Fatalf("signal signature on the transaction path: %v", res.Code)
	}
	if _, res := post(h, PathSignal, bs); res.Code != fedwire.Code_CODE_OK || signals != 1 {
		t.Fatalf("signal: %v %s", res.Code, res.Message)
	}
	if _, res := post(h, PathTransaction, bt); res.Code != fedwire.Code_CODE_OK || in.txns != 1 {
		t.Fatalf("transaction: %v %s", res.Code, res.Message)
	}
}

// TestClientAnswerBound: an answer larger than the request can need (a
// transaction result over MaxResultBytes, a device list over
// MaxDeviceListBytes) is refused, not read into memory.
func TestClientAnswerBound(t *testing.T) {
	cert, caPEM := selfSigned(t, "b.example")
	var sawOrigin atomic.Value
	big := bytes.Repeat([]byte("x"), 2<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathTransaction, func(w http.ResponseWriter, r *http.Request) {
		sawOrigin.Store(r.Header.Get(HeaderOrigin))
		b, _ := proto.Marshal(&fedwire.TransactionResult{Message: string(big)})
		w.Write(b)
	})
	mux.HandleFunc("POST "+PathQuery, func(w http.ResponseWriter, r *http.Request) {
		b, _ := proto.Marshal(&fedwire.QueryResult{Message: string(big)})
		w.Write(b)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: mux, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })
	c := &Client{Peers: onePeer{Peer{Domain: "b.example", Address: pc.LocalAddr().String(), CAPEM: caPEM}}, Timeout: 10 * time.Second}
	defer c.Close()
	k, _ := serverkey.Generate(rand.Reader)
	st, _ := SignTransaction(k, &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "t"})
	if _, err := c.Send(context.Background(), "b.example", st); err == nil || !strings.Contains(err.Error(), "may need") {
		t.Fatalf("2 MiB transaction result: %v", err)
	}
	if got, _ := sawOrigin.Load().(string); got != "a.example" {
		t.Fatalf("%s header %q, want a.example", HeaderOrigin, got)
	}
	sq, _ := SignQuery(k, &fedwire.Query{Origin: "a.example", Destination: "b.example", QueryId: "q",
		Body: &fedwire.Query_FetchDeviceList{FetchDeviceList: &fedwire.FetchDeviceList{User: "u@b.example"}}})
	if _, err := c.Query(context.Background(), "b.example", sq); err == nil || !strings.Contains(err.Error(), "may need") {
		t.Fatalf("2 MiB device list answer: %v", err)
	}
	sq, _ = SignQuery(k, &fedwire.Query{Origin: "a.example", Destination: "b.example", QueryId: "q2",
		Body: &fedwire.Query_FetchMedia{FetchMedia: &fedwire.FetchMedia{MediaId: "m", Length: 4 << 20}}})
	if _, err := c.Query(context.Background(), "b.example", sq); err != nil {
		t.Fatalf("a 2 MiB answer to a 4 MiB media read is within bounds: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// rssKiB reads this process's resident set size (Linux; 0 elsewhere).
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkHandlerOversizedBodies: 64 concurrent near-limit bodies from
// one known origin and 64 from an unknown one; only MaxBodiesPerOrigin are
// read at once and the unknown origin's none. It logs RSS before and after
// (the tests count reads instead of measuring memory).
func BenchmarkHandlerOversizedBodies(b *testing.B) {
	now := time.Now()
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, _ := newTestHandler(k, now, &log)
	h.Log = slog.New(slog.DiscardHandler)
	before := rssKiB()
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range 128 {
			origin := "a.example"
			if i%2 == 1 {
				origin = "stranger.example"
			}
			wg.Go(func() {
				body := io.LimitReader(zeros{}, DefaultMaxTransactionBytes) // the sender holds no buffer
				req := httptest.NewRequest(http.MethodPost, PathTransaction, body)
				req.ContentLength = DefaultMaxTransactionBytes
				req.Header.Set(HeaderOrigin, origin)
				req.Header.Set(HeaderKeyID, string(k.ID()))
				h.ServeHTTP(httptest.NewRecorder(), req)
			})
		}
		wg.Wait()
	}
	b.Logf("RSS %d MiB before, %d MiB after", before>>10, rssKiB()>>10)
}
