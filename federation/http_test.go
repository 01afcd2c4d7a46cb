package federation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// countingInbound records what reached it; it answers every envelope OK.
type countingInbound struct{ txns, queries int }

func (c *countingInbound) ApplyTransaction(_ context.Context, txn *fedwire.Transaction, _ []byte) (*fedwire.TransactionResult, error) {
	c.txns++
	res := &fedwire.TransactionResult{}
	for _, e := range txn.Envelopes {
		res.Results = append(res.Results, &fedwire.EnvelopeResult{Id: e.Id})
	}
	return res, nil
}

func (c *countingInbound) Query(context.Context, *fedwire.Query) *fedwire.QueryResult {
	c.queries++
	return &fedwire.QueryResult{}
}

func newTestHandler(k *serverkey.Key, now time.Time, log *bytes.Buffer) (*Handler, *countingInbound) {
	in := &countingInbound{}
	return &Handler{
		Verifier: &Verifier{Self: "b.example", Keys: staticKeys{"a.example": setOf(k)}, Policy: NewPolicy(ModeOpen, nil, []string{"evil.example"}),
			Now: func() time.Time { return now }},
		Limiter: &RateLimiter{Rate: 1, Burst: 2, Now: func() time.Time { return now }},
		Inbound: in,
		KeyDoc: func() *KeyDocument {
			return NewKeyDocument("b.example", "127.0.0.1:1", serverkey.PublicKey{ID: k.ID(), Key: k.Public()})
		},
		Log: slog.New(slog.NewTextHandler(log, nil)),
	}, in
}

func post(h http.Handler, path string, body []byte) (*httptest.ResponseRecorder, *fedwire.TransactionResult) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	origin, keyID := "a.example", "ed25519:AAAAAAAAAAA"
	st := &fedwire.SignedTransaction{}
	if proto.Unmarshal(body, st) == nil {
		if o := signedOrigin(st); o != "" {
			origin = o
		}
		if st.KeyId != "" {
			keyID = st.KeyId
		}
	}
	req.Header.Set(HeaderOrigin, origin)
	req.Header.Set(HeaderKeyID, keyID)
	h.ServeHTTP(rec, req)
	res := &fedwire.TransactionResult{}
	proto.Unmarshal(rec.Body.Bytes(), res)
	return rec, res
}

// TestHandler: a valid transaction reaches the inbound side; refusals are
// answered with their code, logged with origin and code, and reach nothing;
// the per-origin rate limit holds; the key document round-trips.
func TestHandler(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	k, _ := serverkey.Generate(rand.Reader)
	var log bytes.Buffer
	h, in := newTestHandler(k, now, &log)
	signed := func(origin string, env ...*fedwire.Envelope) []byte {
		st, _ := SignTransaction(k, &fedwire.Transaction{Origin: origin, Destination: "b.example", TxnId: "t", OriginTimeMs: now.UnixMilli(), Envelopes: env})
		b, _ := proto.Marshal(st)
		return b
	}
	rec, res := post(h, PathTransaction, signed("a.example", &fedwire.Envelope{Id: "e"}))
	if rec.Code != 200 || res.Code != fedwire.Code_CODE_OK || len(res.Results) != 1 || in.txns != 1 {
		t.Fatalf("valid: %d %v (inbound saw %d)", rec.Code, res, in.txns)
	}
	if _, res := post(h, PathTransaction, signed("evil.example")); res.Code != fedwire.Code_CODE_FORBIDDEN || in.txns != 1 {
		t.Fatalf("denied: %v", res)
	}
	if _, res := post(h, PathTransaction, []byte("\xff\xff")); res.Code != fedwire.Code_CODE_BAD_REQUEST || in.txns != 1 {
		t.Fatalf("garbage: %v", res)
	}
	post(h, PathTransaction, signed("a.example"))
	if _, res := post(h, PathTransaction, signed("a.example")); res.Code != fedwire.Code_CODE_RATE_LIMITED || in.txns != 2 {
		t.Fatalf("over the rate: %v (inbound saw %d)", res, in.txns)
	}
	if rec, _ := post(h, PathTransaction, make([]byte, DefaultMaxTransactionBytes+5<<10)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", rec.Code)
	}
	if !strings.Contains(log.String(), "origin=evil.example") || !strings.Contains(log.String(), "CODE_FORBIDDEN") {
		t.Errorf("refusal not logged: %s", log.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathKeyDocument, nil))
	doc, set, err := ParseKeyDocument(rec.Body.Bytes(), "b.example")
	if err != nil || doc.Federation != "127.0.0.1:1" || len(set.Keys()) != 1 || set.Keys()[0].ID != k.ID() {
		t.Fatalf("key document: %v %v", doc, err)
	}
	if _, _, err := ParseKeyDocument(rec.Body.Bytes(), "c.example"); err == nil {
		t.Error("a key document for another server accepted")
	}
}

// TestKeyDocumentWindows: a key's published window becomes a time on the
// receiver's clock, measured from when it fetched the document, whatever
// the publisher's clock says; a stored copy (fetch time unknown) is stale;
// a document without published_ms (an older server) gives no window.
func TestKeyDocumentWindows(t *testing.T) {
	k, _ := serverkey.Generate(rand.Reader)
	pub := time.Unix(1_000_000, 0) // the publisher's clock, an hour behind
	doc := NewKeyDocument("b.example", "h:1", serverkey.PublicKey{ID: k.ID(), Key: k.Public(), ValidUntil: pub.Add(time.Minute)})
	doc.PublishedMs = pub.UnixMilli()
	b, _ := json.Marshal(doc)
	fetched := pub.Add(time.Hour)
	_, set, err := ParseKeyDocumentAt(b, "b.example", fetched)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Fresh(k.ID(), fetched.Add(59*time.Second)) || set.Fresh(k.ID(), fetched.Add(61*time.Second)) {
		t.Fatalf("window %v, want a minute from the fetch", set.Keys()[0].FreshUntil)
	}
	if _, set, _ = ParseKeyDocument(b, "b.example"); set.Fresh(k.ID(), fetched) {
		t.Fatal("a stored copy is fresh")
	}
	doc.PublishedMs = 0
	b, _ = json.Marshal(doc)
	if _, set, _ = ParseKeyDocument(b, "b.example"); !set.Fresh(k.ID(), fetched.Add(24*time.Hour)) {
		t.Fatal("a document of an older server got a window")
	}
}

func FuzzParseKeyDocument(f *testing.F) {
	k, _ := serverkey.Generate(rand.Reader)
	seed := NewKeyDocument("b.example", "h:1", serverkey.PublicKey{ID: k.ID(), Key: k.Public(), ValidUntil: time.Unix(1e9, 0)})
	b, _ := json.Marshal(seed)
	f.Add(b)
	f.Add([]byte(`{"server":"b.example","keys":[{"id":"x","key":""}]}`))
	seed.PublishedMs = 1e12
	b, _ = json.Marshal(seed)
	f.Add(b)
	fetched := time.Unix(2e9, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, set, err := ParseKeyDocumentAt(data, "b.example", fetched)
		if err != nil {
			return
		}
		for _, pk := range set.Keys() {
			// A window is fetched + (valid_until − published), on the receiver's clock.
			want := !pk.ValidUntil.IsZero() && doc.PublishedMs > 0
			if got := !pk.FreshUntil.IsZero(); got != want {
				t.Fatalf("key %s: FreshUntil %v with valid_until %v, published %d", pk.ID, pk.FreshUntil, pk.ValidUntil, doc.PublishedMs)
			}
		}
		if doc.Server != "b.example" || len(set.Keys()) == 0 {
			t.Fatalf("accepted %+v", doc)
		}
		for _, pk := range set.Keys() {
			if serverkey.IDOf(pk.Key) != pk.ID {
				t.Fatalf("key id %s does not match its key", pk.ID)
			}
		}
	})
}

func FuzzHandlerTransaction(f *testing.F) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	k, _ := serverkey.Generate(rand.Reader)
	st, _ := SignTransaction(k, &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "t", OriginTimeMs: now.UnixMilli(),
		Envelopes: []*fedwire.Envelope{{Id: "e", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST, Sender: "u@a.example"}}})
	seed, _ := proto.Marshal(st)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var log bytes.Buffer
		h, in := newTestHandler(k, now, &log)
		h.Limiter = nil
		rec, res := post(h, PathTransaction, data)
		if in.txns > 0 && res.Code != fedwire.Code_CODE_OK {
			t.Fatalf("inbound reached but answered %v", res.Code)
		}
		if in.txns > 0 && !bytes.Equal(data, seed) {
			// Only bytes the key signed may get through.
			var got fedwire.SignedTransaction
			if proto.Unmarshal(data, &got) != nil || !bytes.Equal(got.Transaction, st.Transaction) {
				t.Fatalf("unsigned content reached the inbound side")
			}
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("HTTP %d", rec.Code)
		}
	})
}
