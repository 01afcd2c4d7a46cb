package federation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// Paths served by a federating server.
const (
	PathTransaction = "/hearth/federation/v1/transaction"
	PathQuery       = "/hearth/federation/v1/query"
	PathSignal      = "/hearth/federation/v1/signal" // lossy signals (typing): no dedup, no queue
	PathKeyDocument = "/.well-known/hearth/server"
	contentType     = "application/x-protobuf"
	// HeaderOrigin names the sending server on every POST, so that the
	// receiver can refuse a request from an origin it will not hear
	// (policy, unknown keys, too many bodies in flight) before reading its
	// body. The signed origin inside must match it.
	HeaderOrigin = "Hearth-Origin"
	// HeaderKeyID names the key that signed the body (it must match the
	// body's key id): a malformed one is refused before any key lookup.
	HeaderKeyID = "Hearth-Key-Id"
)

// Defaults of the inbound body bounds (Handler).
const (
	DefaultMaxBodies          = 32
	DefaultMaxBodiesPerOrigin = 4
	DefaultBodyTimeout        = 30 * time.Second
)

// Inbound applies verified transactions and answers verified queries. The
// homeserver implements it; it deduplicates on (origin, txn_id) itself
// because the record must be written with the effects.
type Inbound interface {
	// ApplyTransaction answers a transaction whose signature, destination,
	// time and limits were checked; hash is SHA-256 of its signed bytes.
	ApplyTransaction(ctx context.Context, txn *fedwire.Transaction, hash []byte) (*fedwire.TransactionResult, error)
	Query(ctx context.Context, q *fedwire.Query) *fedwire.QueryResult
}

// Handler serves the federation endpoints and the key document.
type Handler struct {
	Verifier *Verifier
	Limiter  *RateLimiter // per origin; nil: none
	Inbound  Inbound
	KeyDoc   func() *KeyDocument
	Log      *slog.Logger
	// Signals applies a verified transaction of lossy signals (typing)
	// from PathSignal; nil: the path is not served. Signals are not
	// deduplicated: a replay within the clock window repeats a signal.
	Signals func(ctx context.Context, txn *fedwire.Transaction) *fedwire.TransactionResult
	// SignalLimiter bounds signal transactions per origin, apart from
	// Limiter so that signals cannot use up the budget of messages.
	SignalLimiter *RateLimiter
	// MaxBodies bounds the request bodies being read at once, over all
	// origins (default DefaultMaxBodies); MaxBodiesPerOrigin per origin
	// (default DefaultMaxBodiesPerOrigin). A request over either is
	// answered CODE_UNAVAILABLE (retry) without its body being read.
	MaxBodies, MaxBodiesPerOrigin int
	// BodyTimeout bounds reading one body (default DefaultBodyTimeout):
	// a read deadline where the connection supports one, else the body
	// is closed at the deadline.
	BodyTimeout time.Duration

	slotsOnce sync.Once
	slots     chan struct{}
	mu        sync.Mutex
	perOrigin map[string]int
}

// ServeHTTP routes the three federation paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == PathKeyDocument && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.KeyDoc())
	case r.URL.Path == PathTransaction && r.Method == http.MethodPost:
		h.serveTransaction(w, r)
	case r.URL.Path == PathQuery && r.Method == http.MethodPost:
		h.serveQuery(w, r)
	case r.URL.Path == PathSignal && r.Method == http.MethodPost && h.Signals != nil:
		h.serveSignals(w, r)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// preflight checks what can be checked before a body is read: the
// origin named in HeaderOrigin is a domain the policy allows and whose
// keys this server has or can get (a pinned peer, a cached or bounded
// discovery), the declared length is within the limit, and a body slot
// is free for the origin and overall. ok false: it answered the refusal
// (and read nothing); otherwise release frees the slot.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request, what, op string, query bool) (origin string, release func(), ok bool) {
	refuse := func(err error) (string, func(), bool) {
		h.refused(r, what, origin, err)
		h.writeRefusal(w, query, err)
		return "", nil, false
	}
	origin = r.Header.Get(HeaderOrigin)
	if err := ValidDomain(origin); err != nil {
		return refuse(&Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "missing or invalid " + HeaderOrigin + " header", Err: err})
	}
	if h.Verifier.Policy != nil && !h.Verifier.Policy.Allowed(origin) {
		return refuse(errorf(op, fedwire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", origin))
	}
	if !wellFormedKeyID(r.Header.Get(HeaderKeyID)) {
		return refuse(errorf(op, fedwire.Code_CODE_BAD_SIGNATURE, "missing or malformed %s header", HeaderKeyID))
	}
	lim := int64(h.Verifier.Limits.withDefaults().MaxTransactionBytes + 4096)
	if r.ContentLength > lim {
		h.Log.Warn("federation: refused", "what", what, "origin", origin, "remote", r.RemoteAddr, "code", fedwire.Code_CODE_TOO_LARGE.String(), "declared", r.ContentLength)
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return "", nil, false
	}
	if _, err := h.Verifier.Keys.ServerKeys(r.Context(), origin); err != nil {
		if Permanent(err) || errors.Is(err, ErrNoPeer) {
			return refuse(&Error{Op: op, Kind: fedwire.Code_CODE_BAD_SIGNATURE, Msg: "unknown origin key", Err: err})
		}
		return refuse(&Error{Op: op, Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: "origin keys unavailable; retry later", Err: err})
	}
	release, ok = h.takeSlot(origin)
	if !ok {
		return refuse(errorf(op, fedwire.Code_CODE_UNAVAILABLE, "too many requests in flight from %s; retry later", origin))
	}
	return origin, release, true
}

// takeSlot reserves one body slot for origin, without waiting.
func (h *Handler) takeSlot(origin string) (func(), bool) {
	h.slotsOnce.Do(func() {
		n := h.MaxBodies
		if n <= 0 {
			n = DefaultMaxBodies
		}
		h.slots = make(chan struct{}, n)
		h.perOrigin = map[string]int{}
	})
	per := h.MaxBodiesPerOrigin
	if per <= 0 {
		per = DefaultMaxBodiesPerOrigin
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perOrigin[origin] >= per {
		return nil, false
	}
	select {
	case h.slots <- struct{}{}:
	default:
		return nil, false
	}
	h.perOrigin[origin]++
	return func() {
		h.mu.Lock()
		if h.perOrigin[origin]--; h.perOrigin[origin] <= 0 {
			delete(h.perOrigin, origin)
		}
		h.mu.Unlock()
		<-h.slots
	}, true
}

func (h *Handler) writeRefusal(w http.ResponseWriter, query bool, err error) {
	if query {
		h.writeProto(w, &fedwire.QueryResult{Code: KindOf(err), Message: PublicMessage(err)})
		return
	}
	h.writeProto(w, &fedwire.TransactionResult{Code: KindOf(err), Message: PublicMessage(err)})
}

// readBody streams at most the limit, within BodyTimeout; ok false when
// it answered 413/400.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, m proto.Message) bool {
	lim := h.Verifier.Limits.withDefaults().MaxTransactionBytes + 4096
	timeout := h.BodyTimeout
	if timeout <= 0 {
		timeout = DefaultBodyTimeout
	}
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout)); err != nil {
		// No read deadlines on this connection: closing the body at the
		// deadline ends a read that would hold its slot for ever.
		t := time.AfterFunc(timeout, func() { r.Body.Close() })
		defer t.Stop()
	}
	n := r.ContentLength
	if n < 0 || n > int64(lim) {
		n = 0
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	_, err := buf.ReadFrom(io.LimitReader(r.Body, int64(lim)+1))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return false
	}
	if buf.Len() > lim {
		h.Log.Warn("federation: refused", "remote", r.RemoteAddr, "code", fedwire.Code_CODE_TOO_LARGE.String())
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if err := proto.Unmarshal(buf.Bytes(), m); err != nil {
		h.writeProto(w, &fedwire.TransactionResult{Code: fedwire.Code_CODE_BAD_REQUEST, Message: "malformed body"})
		return false
	}
	return true
}

func (h *Handler) writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, "encode", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(b)
}

// readTransaction reads, verifies and rate-limits a signed transaction;
// on failure it answers the refusal itself and returns nil.
func (h *Handler) readTransaction(w http.ResponseWriter, r *http.Request, op, what string, lim *RateLimiter) (*fedwire.Transaction, []byte) {
	origin, release, ok := h.preflight(w, r, what, op, false)
	if !ok {
		return nil, nil
	}
	st := &fedwire.SignedTransaction{}
	read := h.readBody(w, r, st)
	release()
	if !read {
		return nil, nil
	}
	verify := h.Verifier.VerifyTransaction
	if what == "signals" {
		verify = h.Verifier.VerifySignals
	}
	txn, err := verify(r.Context(), st)
	if err == nil && (txn.Origin != origin || st.KeyId != r.Header.Get(HeaderKeyID)) {
		err = errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%s or %s header does not match the signed request", HeaderOrigin, HeaderKeyID)
	}
	if err == nil && lim != nil {
		if ok, wait := lim.Take(txn.Origin, 1); !ok {
			err = errorf(op, fedwire.Code_CODE_RATE_LIMITED, "retry in %s", wait)
		}
	}
	if err != nil {
		h.refused(r, what, originOf(st.GetTransaction(), true), err)
		h.writeProto(w, &fedwire.TransactionResult{Code: KindOf(err), Message: PublicMessage(err)})
		return nil, nil
	}
	return txn, st.Transaction
}

func (h *Handler) serveTransaction(w http.ResponseWriter, r *http.Request) {
	txn, signed := h.readTransaction(w, r, "federation.Transaction", "transaction", h.Limiter)
	if txn == nil {
		return
	}
	sum := sha256.Sum256(signed)
	res, err := h.Inbound.ApplyTransaction(r.Context(), txn, sum[:])
	if err != nil {
		h.refused(r, "transaction", txn.Origin, err)
		if KindOf(err) == fedwire.Code_CODE_INTERNAL {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		res = &fedwire.TransactionResult{Code: KindOf(err), Message: err.Error()}
	}
	h.writeProto(w, res)
}

func (h *Handler) serveSignals(w http.ResponseWriter, r *http.Request) {
	if txn, _ := h.readTransaction(w, r, "federation.Signals", "signals", h.SignalLimiter); txn != nil {
		h.writeProto(w, h.Signals(r.Context(), txn))
	}
}

func (h *Handler) serveQuery(w http.ResponseWriter, r *http.Request) {
	origin, release, ok := h.preflight(w, r, "query", "federation.Query", true)
	if !ok {
		return
	}
	sq := &fedwire.SignedQuery{}
	read := h.readBody(w, r, sq)
	release()
	if !read {
		return
	}
	q, err := h.Verifier.VerifyQuery(r.Context(), sq)
	if err == nil && (q.Origin != origin || sq.KeyId != r.Header.Get(HeaderKeyID)) {
		err = errorf("federation.Query", fedwire.Code_CODE_BAD_REQUEST, "%s or %s header does not match the signed request", HeaderOrigin, HeaderKeyID)
	}
	if err == nil && h.Limiter != nil {
		if ok, wait := h.Limiter.Take(q.Origin, 1); !ok {
			err = errorf("federation.Query", fedwire.Code_CODE_RATE_LIMITED, "retry in %s", wait)
		}
	}
	if err != nil {
		h.refused(r, "query", originOf(sq.GetQuery(), false), err)
		h.writeProto(w, &fedwire.QueryResult{Code: KindOf(err), Message: PublicMessage(err)})
		return
	}
	h.writeProto(w, h.Inbound.Query(r.Context(), q))
}

// refused logs a refusal: origin and code, never payloads.
func (h *Handler) refused(r *http.Request, what, origin string, err error) {
	h.Log.Warn("federation: refused", "what", what, "origin", origin, "remote", r.RemoteAddr, "code", KindOf(err).String(), "err", err)
}

// originOf reads the claimed (unverified) origin for logging.
func originOf(b []byte, txn bool) string {
	if txn {
		t := &fedwire.Transaction{}
		if proto.Unmarshal(b, t) == nil {
			return t.Origin
		}
		return ""
	}
	q := &fedwire.Query{}
	if proto.Unmarshal(b, q) == nil {
		return q.Origin
	}
	return ""
}

// KeyDocument is the JSON at /.well-known/hearth/server.
type KeyDocument struct {
	Server     string      `json:"server"`
	Federation string      `json:"federation"` // HOST:PORT of the federation endpoints
	Keys       []KeyRecord `json:"keys"`
	// PublishedMs is the publisher's clock when it served the document.
	// With it, a receiver turns each key's valid_until_ms into a time on
	// its own clock (fetch time + valid_until_ms − published_ms) after
	// which it fetches the document again (serverkey.PublicKey.FreshUntil).
	PublishedMs int64 `json:"published_ms,omitempty"`
}

// KeyRecord is one published verification key.
type KeyRecord struct {
	ID           string `json:"id"`
	Key          string `json:"key"` // base64url, no padding
	ValidFromMs  int64  `json:"valid_from_ms"`
	ValidUntilMs int64  `json:"valid_until_ms"`
}

// NewKeyDocument publishes keys for server at address.
func NewKeyDocument(server, address string, keys ...serverkey.PublicKey) *KeyDocument {
	d := &KeyDocument{Server: server, Federation: address}
	for _, k := range keys {
		r := KeyRecord{ID: string(k.ID), Key: base64.RawURLEncoding.EncodeToString(k.Key)}
		if !k.ValidFrom.IsZero() {
			r.ValidFromMs = k.ValidFrom.UnixMilli()
		}
		if !k.ValidUntil.IsZero() {
			r.ValidUntilMs = k.ValidUntil.UnixMilli()
		}
		d.Keys = append(d.Keys, r)
	}
	return d
}

// ParseKeyDocument decodes and checks a key document of server whose
// fetch time is unknown (a stored copy): every key with a validity end is
// stale, so that the first use fetches the document again.
func ParseKeyDocument(b []byte, server string) (*KeyDocument, *serverkey.Set, error) {
	return ParseKeyDocumentAt(b, server, time.Time{})
}

// staleKey is the FreshUntil of a key that must be re-fetched before use.
var staleKey = time.Unix(0, 1)

// ParseKeyDocumentAt decodes and checks a key document of server fetched
// at fetched (this server's clock; zero: unknown). A key with a validity
// end in a document with published_ms is fresh until fetched +
// (valid_until_ms − published_ms): the window the publisher gave it,
// measured on the receiver's clock so clock skew does not stretch it.
func ParseKeyDocumentAt(b []byte, server string, fetched time.Time) (*KeyDocument, *serverkey.Set, error) {
	d := &KeyDocument{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, nil, fmt.Errorf("federation: key document: %w", err)
	}
	if d.Server != server {
		return nil, nil, fmt.Errorf("federation: key document is for %q, want %q", d.Server, server)
	}
	var pks []serverkey.PublicKey
	for _, r := range d.Keys {
		raw, err := base64.RawURLEncoding.DecodeString(r.Key)
		if err != nil || len(raw) != 32 {
			return nil, nil, fmt.Errorf("federation: key document: key %q is not 32 base64url bytes", r.ID)
		}
		if serverkey.IDOf(raw) != serverkey.ID(r.ID) {
			return nil, nil, fmt.Errorf("federation: key document: id %q does not match its key", r.ID)
		}
		pk := serverkey.PublicKey{ID: serverkey.ID(r.ID), Key: raw}
		if r.ValidFromMs != 0 {
			pk.ValidFrom = time.UnixMilli(r.ValidFromMs)
		}
		if r.ValidUntilMs != 0 {
			pk.ValidUntil = time.UnixMilli(r.ValidUntilMs)
			if d.PublishedMs > 0 {
				pk.FreshUntil = staleKey
				if !fetched.IsZero() {
					pk.FreshUntil = fetched.Add(time.Duration(r.ValidUntilMs-d.PublishedMs) * time.Millisecond)
				}
			}
		}
		pks = append(pks, pk)
	}
	if len(pks) == 0 {
		return nil, nil, errors.New("federation: key document has no keys")
	}
	return d, serverkey.NewSet(pks...), nil
}
