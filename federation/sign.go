package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// Signature labels: each signed kind has its own, so a signature can never
// be replayed as another kind.
const (
	TransactionLabel = "hearth federation transaction v1"
	QueryLabel       = "hearth federation query v1"
	// SignalLabel signs transactions on PathSignal (typing, presence): a
	// signal transaction can never be replayed as a durable one, nor the
	// reverse.
	SignalLabel = "hearth federation signal v1"
)

// SignTransaction encodes txn deterministically and signs the bytes.
func SignTransaction(k *serverkey.Key, txn *fedwire.Transaction) (*fedwire.SignedTransaction, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(txn)
	if err != nil {
		return nil, fmt.Errorf("federation.SignTransaction: encode: %w", err)
	}
	return &fedwire.SignedTransaction{Transaction: b, KeyId: string(k.ID()), Signature: k.Sign(TransactionLabel, b)}, nil
}

// SignSignals encodes a transaction of lossy signals (PathSignal) and
// signs it with SignalLabel.
func SignSignals(k *serverkey.Key, txn *fedwire.Transaction) (*fedwire.SignedTransaction, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(txn)
	if err != nil {
		return nil, fmt.Errorf("federation.SignSignals: encode: %w", err)
	}
	return &fedwire.SignedTransaction{Transaction: b, KeyId: string(k.ID()), Signature: k.Sign(SignalLabel, b)}, nil
}

// SignQuery encodes q deterministically and signs the bytes.
func SignQuery(k *serverkey.Key, q *fedwire.Query) (*fedwire.SignedQuery, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("federation.SignQuery: encode: %w", err)
	}
	return &fedwire.SignedQuery{Query: b, KeyId: string(k.ID()), Signature: k.Sign(QueryLabel, b)}, nil
}

// KeyResolver finds the verification keys of a remote server (from the
// admin's peer table in development, from its .well-known document otherwise).
type KeyResolver interface {
	ServerKeys(ctx context.Context, domain string) (*serverkey.Set, error)
}

// KeyRefresher is a KeyResolver that can re-fetch a server's keys when a
// signature names a key id it does not hold (the server rotated). It may
// refuse when it refreshed that server recently.
type KeyRefresher interface {
	// RefreshServerKeys is asked because a request named keyID, which
	// the cached keys of domain do not hold.
	RefreshServerKeys(ctx context.Context, domain, keyID string) (*serverkey.Set, error)
}

// DefaultMaxTransactionBytes bounds one signed transaction. It holds the
// largest envelope a hub relays: a commit of a 1,024-device group on the
// post-quantum suite with its Welcome and GroupInfo (the homeserver's
// MaxCommitBytes, 6 MiB by default; docs/decisions/0004-large-groups.md).
const DefaultMaxTransactionBytes = 16 << 20

// Limits bound what one inbound transaction may carry.
type Limits struct {
	MaxTransactionBytes int           // default DefaultMaxTransactionBytes (16 MiB)
	MaxEnvelopes        int           // default 1000
	MaxSkew             time.Duration // default 5 minutes each way
}

func (l Limits) withDefaults() Limits {
	if l.MaxTransactionBytes <= 0 {
		l.MaxTransactionBytes = DefaultMaxTransactionBytes
	}
	if l.MaxEnvelopes <= 0 {
		l.MaxEnvelopes = 1000
	}
	if l.MaxSkew <= 0 {
		l.MaxSkew = 5 * time.Minute
	}
	return l
}

// Verifier checks inbound signed transactions and queries for one server.
type Verifier struct {
	Self   string // this server's domain: the only accepted destination
	Keys   KeyResolver
	Policy *Policy
	Limits Limits
	Now    func() time.Time
}

// header is what transactions and queries share.
type header struct {
	origin, destination string
	timeMs              int64
}

func (v *Verifier) check(ctx context.Context, op, label string, signed []byte, keyID string, sig []byte, decode func([]byte) (header, error)) error {
	lim := v.Limits.withDefaults()
	if len(signed) > lim.MaxTransactionBytes {
		return errorf(op, fedwire.Code_CODE_TOO_LARGE, "%d bytes over the %d limit", len(signed), lim.MaxTransactionBytes)
	}
	// Decoding before verifying only reads the origin to pick its keys;
	// nothing decoded is trusted until the signature over these exact bytes holds.
	h, err := decode(signed)
	if err != nil {
		return &Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "malformed", Err: err}
	}
	if err := ValidDomain(h.origin); err != nil {
		return &Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "origin", Err: err}
	}
	if v.Policy != nil && !v.Policy.Allowed(h.origin) {
		return errorf(op, fedwire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", h.origin)
	}
	if !strings.EqualFold(h.destination, v.Self) {
		return errorf(op, fedwire.Code_CODE_WRONG_DESTINATION, "addressed to %q, this is %q", h.destination, v.Self)
	}
	now := v.Now()
	sent := time.UnixMilli(h.timeMs)
	if sent.Before(now.Add(-lim.MaxSkew)) || sent.After(now.Add(lim.MaxSkew)) {
		return errorf(op, fedwire.Code_CODE_CLOCK_SKEW, "origin time %s outside ±%s of %s", sent.UTC().Format(time.RFC3339), lim.MaxSkew, now.UTC().Format(time.RFC3339))
	}
	// Everything above is cheap and local. Fetching an unknown origin's
	// keys is outbound work (discovery), so a request that cannot be
	// verified whatever the keys is refused before it.
	if !wellFormedKeyID(keyID) || len(sig) != ed25519.SignatureSize {
		return errorf(op, fedwire.Code_CODE_BAD_SIGNATURE, "malformed key id or signature")
	}
	set, err := v.Keys.ServerKeys(ctx, h.origin)
	if err != nil {
		// The remote side learns only that the keys could not be had; why
		// (a lookup or dial error) stays in the local log.
		if Permanent(err) {
			return &Error{Op: op, Kind: fedwire.Code_CODE_BAD_SIGNATURE, Msg: "unknown origin key", Err: err}
		}
		return &Error{Op: op, Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: "origin keys unavailable; retry later", Err: err}
	}
	err = verifyFresh(set, serverkey.ID(keyID), sent, now, label, signed, sig)
	var rerr error
	if r, ok := v.Keys.(KeyRefresher); ok && (errors.Is(err, serverkey.ErrUnknown) || errors.Is(err, serverkey.ErrExpired)) {
		// An unknown key id (the origin rotated) or a key whose validity
		// window ended (it may have been retired since): fetch the
		// origin's document again and decide on what it says now.
		var set2 *serverkey.Set
		if set2, rerr = r.RefreshServerKeys(ctx, h.origin, keyID); rerr == nil {
			err = verifyFresh(set2, serverkey.ID(keyID), sent, now, label, signed, sig)
		}
	}
	if err != nil {
		msg := "from " + h.origin + ": " + err.Error()
		if errors.Is(rerr, ErrRefreshSoon) {
			// A real new key is admitted as soon as the refresh may run:
			// the sender retries (a temporary refusal), it does not fail.
			return &Error{Op: op, Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: msg + " (" + rerr.Error() + ")", Err: rerr}
		}
		if errors.Is(rerr, ErrRefreshLimited) {
			msg += " (" + rerr.Error() + ")"
		} else if rerr != nil {
			msg += " (key refresh failed)"
		}
		return &Error{Op: op, Kind: fedwire.Code_CODE_BAD_SIGNATURE, Msg: msg, Err: rerr}
	}
	return nil
}

// verifyFresh checks the signature with a key valid at the origin time
// sent and still fresh at now (serverkey.PublicKey.FreshUntil): a key
// whose published window ended is not trusted until its document says
// again that it is valid.
func verifyFresh(set *serverkey.Set, id serverkey.ID, sent, now time.Time, label string, signed, sig []byte) error {
	if err := set.Verify(id, sent, label, signed, sig); err != nil {
		return err
	}
	if !set.Fresh(id, now) {
		return fmt.Errorf("%w: %s: its published validity ended; keys must be fetched again", serverkey.ErrExpired, id)
	}
	return nil
}

// ErrRefreshLimited is a KeyRefresher's refusal to fetch an origin's keys
// again so soon; its text may be shown to the remote side.
// It is answered for a key id that a recent refresh did not find (a
// forgery, or a key the origin has not published yet).
var ErrRefreshLimited = errors.New("keys were refreshed recently")

// ErrRefreshSoon is a KeyRefresher's answer when a refresh for a key id
// it has not looked for yet must wait a moment (another refresh of the
// origin ran just now); the request is refused as temporary.
var ErrRefreshSoon = errors.New("keys are refreshed again shortly; retry")

// wellFormedKeyID reports whether id has the shape of a key id
// ("ed25519:" and 11 base64url characters).
func wellFormedKeyID(id string) bool {
	rest, ok := strings.CutPrefix(id, "ed25519:")
	if !ok || len(rest) != 11 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// VerifyTransaction checks signature, key validity, destination, clock skew,
// policy and limits, and returns the decoded transaction. It does not
// deduplicate: the caller checks (origin, txn_id) against its store.
func (v *Verifier) VerifyTransaction(ctx context.Context, st *fedwire.SignedTransaction) (*fedwire.Transaction, error) {
	return v.verifyTxn(ctx, "federation.VerifyTransaction", TransactionLabel, st)
}

// VerifySignals checks a transaction from PathSignal like
// VerifyTransaction, under SignalLabel.
func (v *Verifier) VerifySignals(ctx context.Context, st *fedwire.SignedTransaction) (*fedwire.Transaction, error) {
	return v.verifyTxn(ctx, "federation.VerifySignals", SignalLabel, st)
}

func (v *Verifier) verifyTxn(ctx context.Context, op, label string, st *fedwire.SignedTransaction) (*fedwire.Transaction, error) {
	txn := &fedwire.Transaction{}
	err := v.check(ctx, op, label, st.GetTransaction(), st.GetKeyId(), st.GetSignature(), func(b []byte) (header, error) {
		if err := proto.Unmarshal(b, txn); err != nil {
			return header{}, err
		}
		return header{txn.Origin, txn.Destination, txn.OriginTimeMs}, nil
	})
	if err != nil {
		return nil, err
	}
	lim := v.Limits.withDefaults()
	if txn.TxnId == "" || len(txn.TxnId) > 128 {
		return nil, errorf(op, fedwire.Code_CODE_BAD_REQUEST, "transaction id missing or over 128 bytes")
	}
	if len(txn.Envelopes) > lim.MaxEnvelopes {
		return nil, errorf(op, fedwire.Code_CODE_TOO_LARGE, "%d envelopes over the %d limit", len(txn.Envelopes), lim.MaxEnvelopes)
	}
	return txn, nil
}

// VerifyQuery checks a signed query like VerifyTransaction.
func (v *Verifier) VerifyQuery(ctx context.Context, sq *fedwire.SignedQuery) (*fedwire.Query, error) {
	const op = "federation.VerifyQuery"
	q := &fedwire.Query{}
	err := v.check(ctx, op, QueryLabel, sq.GetQuery(), sq.GetKeyId(), sq.GetSignature(), func(b []byte) (header, error) {
		if err := proto.Unmarshal(b, q); err != nil {
			return header{}, err
		}
		return header{q.Origin, q.Destination, q.OriginTimeMs}, nil
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}
