package federation

import (
	"context"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

type staticKeys map[string]*serverkey.Set

func (s staticKeys) ServerKeys(_ context.Context, domain string) (*serverkey.Set, error) {
	set, ok := s[domain]
	if !ok {
		return nil, errors.New("no keys known")
	}
	return set, nil
}

func setOf(k *serverkey.Key) *serverkey.Set {
	return serverkey.NewSet(serverkey.PublicKey{ID: k.ID(), Key: k.Public()})
}

func TestVerifyTransaction(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	aKey, _ := serverkey.Generate(rand.Reader)
	otherKey, _ := serverkey.Generate(rand.Reader)
	v := &Verifier{
		Self:   "b.example",
		Keys:   staticKeys{"a.example": setOf(aKey), "evil.example": setOf(otherKey)},
		Policy: NewPolicy(ModeDenylist, nil, []string{"evil.example"}),
		Now:    func() time.Time { return now },
	}
	txn := func(mut func(*fedwire.Transaction)) *fedwire.Transaction {
		t := &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "t1", OriginTimeMs: now.UnixMilli(),
			Envelopes: []*fedwire.Envelope{{Id: "e1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT, Sender: "alice@a.example/D1", ConversationId: "c1@b.example"}}}
		if mut != nil {
			mut(t)
		}
		return t
	}
	sign := func(k *serverkey.Key, t *fedwire.Transaction) *fedwire.SignedTransaction {
		st, err := SignTransaction(k, t)
		if err != nil {
			panic(err)
		}
		return st
	}
	good := sign(aKey, txn(nil))
	got, err := v.VerifyTransaction(context.Background(), good)
	if err != nil {
		t.Fatalf("good transaction: %v", err)
	}
	if got.TxnId != "t1" || len(got.Envelopes) != 1 {
		t.Fatalf("decoded %v", got)
	}

	flipped := proto.Clone(good).(*fedwire.SignedTransaction)
	flipped.Transaction[len(flipped.Transaction)-1] ^= 1
	forgedOrigin := sign(otherKey, txn(func(t *fedwire.Transaction) {}))
	wrongKeyID := proto.Clone(good).(*fedwire.SignedTransaction)
	wrongKeyID.KeyId = string(otherKey.ID())

	cases := []struct {
		name string
		st   *fedwire.SignedTransaction
		want fedwire.Code
	}{
		{"bad signature", flipped, fedwire.Code_CODE_BAD_SIGNATURE},
		{"signed by another server's key", forgedOrigin, fedwire.Code_CODE_BAD_SIGNATURE},
		{"unknown key id", wrongKeyID, fedwire.Code_CODE_BAD_SIGNATURE},
		{"wrong destination", sign(aKey, txn(func(t *fedwire.Transaction) { t.Destination = "c.example" })), fedwire.Code_CODE_WRONG_DESTINATION},
		{"too old", sign(aKey, txn(func(t *fedwire.Transaction) { t.OriginTimeMs = now.Add(-time.Hour).UnixMilli() })), fedwire.Code_CODE_CLOCK_SKEW},
		{"from the future", sign(aKey, txn(func(t *fedwire.Transaction) { t.OriginTimeMs = now.Add(time.Hour).UnixMilli() })), fedwire.Code_CODE_CLOCK_SKEW},
		{"denied origin", sign(otherKey, txn(func(t *fedwire.Transaction) { t.Origin = "evil.example" })), fedwire.Code_CODE_FORBIDDEN},
		{"unknown origin", sign(aKey, txn(func(t *fedwire.Transaction) { t.Origin = "nobody.example" })), fedwire.Code_CODE_UNAVAILABLE},
		{"no txn id", sign(aKey, txn(func(t *fedwire.Transaction) { t.TxnId = "" })), fedwire.Code_CODE_BAD_REQUEST},
		{"garbage", &fedwire.SignedTransaction{Transaction: []byte{0xff, 0xff}}, fedwire.Code_CODE_BAD_REQUEST},
		{"bad origin", sign(aKey, txn(func(t *fedwire.Transaction) { t.Origin = "A..example" })), fedwire.Code_CODE_BAD_REQUEST},
	}
	for _, c := range cases {
		_, err := v.VerifyTransaction(context.Background(), c.st)
		if KindOf(err) != c.want {
			t.Errorf("%s: got %v (%v), want %v", c.name, KindOf(err), err, c.want)
		}
	}

	// Key rotation: an old key still verifies what it signed while valid.
	newKey, _ := serverkey.Generate(rand.Reader)
	v.Keys = staticKeys{"a.example": serverkey.NewSet(
		serverkey.PublicKey{ID: aKey.ID(), Key: aKey.Public(), ValidUntil: now.Add(-time.Minute)},
		serverkey.PublicKey{ID: newKey.ID(), Key: newKey.Public()},
	)}
	if _, err := v.VerifyTransaction(context.Background(), good); KindOf(err) != fedwire.Code_CODE_BAD_SIGNATURE {
		t.Errorf("expired key accepted: %v", err)
	}
	if _, err := v.VerifyTransaction(context.Background(), sign(newKey, txn(nil))); err != nil {
		t.Errorf("new key: %v", err)
	}
	// Policy allow-list mode refuses anyone not listed.
	v.Policy = NewPolicy(ModeAllowlist, []string{"c.example"}, nil)
	if _, err := v.VerifyTransaction(context.Background(), sign(newKey, txn(nil))); KindOf(err) != fedwire.Code_CODE_FORBIDDEN {
		t.Errorf("allow-list: %v", err)
	}
	v.Policy.Allow("a.example")
	if _, err := v.VerifyTransaction(context.Background(), sign(newKey, txn(nil))); err != nil {
		t.Errorf("after allow: %v", err)
	}
}

func TestCheckEnvelope(t *testing.T) {
	env := func(kind fedwire.EnvelopeKind, sender, conv string, recips ...string) *fedwire.Envelope {
		return &fedwire.Envelope{Id: "e", Kind: kind, Sender: sender, ConversationId: conv, Recipients: recips}
	}
	S, D, L := fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT, fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST
	T := fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING
	pres := func(user string, state uint32, recips ...string) *fedwire.Envelope {
		return &fedwire.Envelope{Id: "e", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE, Sender: user, Presence: state, Recipients: recips}
	}
	cases := []struct {
		name string
		env  *fedwire.Envelope
		want fedwire.Code
	}{
		{"submit ok", env(S, "alice@a.example/D1", "c@b.example"), fedwire.Code_CODE_OK},
		{"submit for another domain's user", env(S, "mallory@c.example/D1", "c@b.example"), fedwire.Code_CODE_FORBIDDEN},
		{"submit to a conversation hubbed elsewhere", env(S, "alice@a.example/D1", "c@c.example"), fedwire.Code_CODE_WRONG_DESTINATION},
		{"deliver from the hub", env(D, "alice@a.example/D1", "c@a.example", "bob@b.example/X"), fedwire.Code_CODE_OK},
		{"deliver from a non-hub", env(D, "alice@a.example/D1", "c@c.example", "bob@b.example/X"), fedwire.Code_CODE_FORBIDDEN},
		{"deliver to a device elsewhere", env(D, "alice@a.example/D1", "c@a.example", "carol@c.example/X"), fedwire.Code_CODE_BAD_REQUEST},
		{"device list of own user", env(L, "alice@a.example", ""), fedwire.Code_CODE_OK},
		{"device list of a foreign user", env(L, "bob@b.example", ""), fedwire.Code_CODE_FORBIDDEN},
		{"typing to the hub", env(T, "alice@a.example/D1", "c@b.example"), fedwire.Code_CODE_OK},
		{"typing to the hub for another domain's user", env(T, "carol@c.example/D1", "c@b.example"), fedwire.Code_CODE_FORBIDDEN},
		{"typing from the hub", env(T, "carol@c.example/D1", "c@a.example", "bob@b.example/X"), fedwire.Code_CODE_OK},
		{"typing from the hub to a device elsewhere", env(T, "carol@c.example/D1", "c@a.example", "carol@c.example/X"), fedwire.Code_CODE_BAD_REQUEST},
		{"typing from the hub to nobody", env(T, "carol@c.example/D1", "c@a.example"), fedwire.Code_CODE_BAD_REQUEST},
		{"typing from a third server", env(T, "alice@a.example/D1", "c@c.example", "bob@b.example/X"), fedwire.Code_CODE_FORBIDDEN},
		{"typing with a bad sender", env(T, "not a device", "c@b.example"), fedwire.Code_CODE_BAD_REQUEST},
		{"presence of own user", pres("alice@a.example", 1), fedwire.Code_CODE_OK},
		{"presence relayed to a user here", pres("carol@c.example", 2, "bob@b.example"), fedwire.Code_CODE_OK},
		{"presence relayed to nobody", pres("carol@c.example", 2), fedwire.Code_CODE_FORBIDDEN},
		{"presence relayed to a user elsewhere", pres("carol@c.example", 2, "dave@c.example"), fedwire.Code_CODE_BAD_REQUEST},
		{"presence of the destination's own user", pres("bob@b.example", 1), fedwire.Code_CODE_FORBIDDEN},
		{"presence with no state", pres("alice@a.example", 0), fedwire.Code_CODE_BAD_REQUEST},
		{"presence of a device, not a user", pres("alice@a.example/D1", 1), fedwire.Code_CODE_BAD_REQUEST},
		{"unknown kind", env(99, "alice@a.example/D1", "c@b.example"), fedwire.Code_CODE_BAD_REQUEST},
		{"no id", &fedwire.Envelope{Kind: S, Sender: "alice@a.example/D1", ConversationId: "c@b.example"}, fedwire.Code_CODE_BAD_REQUEST},
	}
	for _, c := range cases {
		if got := KindOf(CheckEnvelope("a.example", "b.example", c.env)); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBackoffAndRateLimit(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: 10 * time.Second, Rand: mrand.New(mrand.NewPCG(1, 2))}
	prevCeil := time.Duration(0)
	for attempt := 1; attempt <= 50; attempt++ {
		d := b.Delay(attempt)
		ceil := min(100*time.Millisecond<<min(attempt-1, 30), 10*time.Second)
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, ceil/2, ceil)
		}
		if ceil < prevCeil {
			t.Fatalf("ceiling shrank at attempt %d", attempt)
		}
		prevCeil = ceil
	}
	now := time.Unix(0, 0)
	rl := &RateLimiter{Rate: 10, Burst: 5, Now: func() time.Time { return now }}
	for i := 0; i < 5; i++ {
		if ok, _ := rl.Take("a", 1); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := rl.Take("a", 1)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := rl.Take("b", 1); !ok {
		t.Fatal("other origin limited")
	}
	now = now.Add(200 * time.Millisecond)
	if ok, _ := rl.Take("a", 2); !ok {
		t.Fatal("refill did not happen")
	}
}

func FuzzVerifyTransaction(f *testing.F) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	k, _ := serverkey.Generate(rand.Reader)
	st, _ := SignTransaction(k, &fedwire.Transaction{Origin: "a.example", Destination: "b.example", TxnId: "x", OriginTimeMs: now.UnixMilli()})
	seed, _ := proto.Marshal(st)
	f.Add(seed)
	v := &Verifier{Self: "b.example", Keys: staticKeys{"a.example": setOf(k)}, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, data []byte) {
		var st fedwire.SignedTransaction
		if proto.Unmarshal(data, &st) != nil {
			return
		}
		txn, err := v.VerifyTransaction(context.Background(), &st)
		if err == nil && (txn.Origin != "a.example" || txn.Destination != "b.example") {
			t.Fatalf("accepted %v", txn)
		}
		if err == nil {
			for _, e := range txn.Envelopes {
				_ = CheckEnvelope(txn.Origin, "b.example", e)
			}
		}
	})
}
