package schedule

import (
	"fmt"
	"math/bits"

	"hearth/keys/mls/suite"
)

// RatchetType selects one of a leaf's two ratchets.
type RatchetType uint8

// The two ratchets of every leaf (RFC 9420 §9.1).
const (
	Handshake   RatchetType = 1
	Application RatchetType = 2
)

func (r RatchetType) String() string {
	switch r {
	case Handshake:
		return "handshake"
	case Application:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(r))
}

// Limits bound what a receiver derives and keeps for out-of-order
// messages, per ratchet.
type Limits struct {
	// MaxForward is the largest jump from the next expected generation
	// that one message may ask for.
	MaxForward uint32
	// MaxRetained is how many generations behind the newest one keep their
	// keys for late messages; older keys are deleted.
	MaxRetained uint32
}

// DefaultLimits suit a chat: 1024 messages may be lost or reordered in
// flight, and 256 late ones can still be read.
var DefaultLimits = Limits{MaxForward: 1024, MaxRetained: 256}

// KeyNonce is the AEAD key and nonce of one ratchet generation.
type KeyNonce struct {
	Generation uint32
	Key        []byte
	Nonce      []byte
}

// Clear zeroes the key and nonce once they are used.
func (k *KeyNonce) Clear() {
	clear(k.Key)
	clear(k.Nonce)
}

type ratchetID struct {
	leaf uint32
	typ  RatchetType
}

type ratchet struct {
	next    uint64 // generation of secret; 1<<32 when exhausted
	secret  []byte // ratchet_secret_[next]
	skipped map[uint32]KeyNonce
}

// SecretTree is the secret tree of one epoch with its sender ratchets. It
// is not safe for concurrent use; the group state owning it serializes
// access.
type SecretTree struct {
	s        *suite.Suite
	limits   Limits
	leaves   uint32
	nodes    map[uint32][]byte // secrets of nodes not yet expanded
	ratchets map[ratchetID]*ratchet
}

// NewSecretTree starts the secret tree of an epoch from encryption_secret
// for a ratchet tree of leafCount leaves (a power of two, as every MLS
// ratchet tree is).
func NewSecretTree(s *suite.Suite, encryptionSecret []byte, leafCount uint32, lim Limits) (*SecretTree, error) {
	if leafCount == 0 || leafCount&(leafCount-1) != 0 || leafCount > 1<<30 {
		return nil, fmt.Errorf("%w: leaf count %d is not a power of two up to 2^30", ErrInput, leafCount)
	}
	if len(encryptionSecret) != s.Nh() {
		return nil, fmt.Errorf("%w: encryption_secret is %d bytes, want %d", ErrInput, len(encryptionSecret), s.Nh())
	}
	if lim.MaxForward == 0 {
		return nil, fmt.Errorf("%w: MaxForward must be positive", ErrInput)
	}
	t := &SecretTree{s: s, limits: lim, leaves: leafCount,
		nodes: map[uint32][]byte{}, ratchets: map[ratchetID]*ratchet{}}
	t.nodes[t.root()] = clone(encryptionSecret)
	return t, nil
}

// LeafCount returns the number of leaves the tree was made for.
func (t *SecretTree) LeafCount() uint32 { return t.leaves }

func (t *SecretTree) root() uint32 { return t.leaves - 1 }

// level is the height of node x in the array representation.
func level(x uint32) int { return bits.TrailingZeros32(^x) }

// leafSecret walks from the root to leaf's node, expanding (and deleting)
// every parent secret on the way (RFC 9420 §9.2).
func (t *SecretTree) leafSecret(leaf uint32) ([]byte, error) {
	target := 2 * leaf
	x := t.root()
	for x != target {
		k := level(x)
		left, right := x^(1<<(k-1)), x^(3<<(k-1))
		if sec, ok := t.nodes[x]; ok {
			l, err := t.s.ExpandWithLabel(sec, "tree", []byte("left"), t.s.Nh())
			if err != nil {
				return nil, err
			}
			r, err := t.s.ExpandWithLabel(sec, "tree", []byte("right"), t.s.Nh())
			if err != nil {
				return nil, err
			}
			t.nodes[left], t.nodes[right] = l, r
			clear(sec)
			delete(t.nodes, x)
		}
		if target < x {
			x = left
		} else {
			x = right
		}
	}
	sec, ok := t.nodes[target]
	if !ok {
		return nil, fmt.Errorf("mls schedule: secret of leaf %d already consumed", leaf)
	}
	delete(t.nodes, target)
	return sec, nil
}

// ratchet returns leaf's ratchet of type typ, creating both of the leaf's
// ratchets on first use.
func (t *SecretTree) ratchet(leaf uint32, typ RatchetType) (*ratchet, error) {
	if leaf >= t.leaves {
		return nil, fmt.Errorf("%w: leaf %d of %d", ErrLeaf, leaf, t.leaves)
	}
	if typ != Handshake && typ != Application {
		return nil, fmt.Errorf("%w: ratchet type %d", ErrInput, typ)
	}
	if r, ok := t.ratchets[ratchetID{leaf, typ}]; ok {
		return r, nil
	}
	sec, err := t.leafSecret(leaf)
	if err != nil {
		return nil, err
	}
	defer clear(sec)
	for _, rt := range []RatchetType{Handshake, Application} {
		rs, err := t.s.ExpandWithLabel(sec, rt.String(), nil, t.s.Nh())
		if err != nil {
			return nil, err
		}
		t.ratchets[ratchetID{leaf, rt}] = &ratchet{secret: rs, skipped: map[uint32]KeyNonce{}}
	}
	return t.ratchets[ratchetID{leaf, typ}], nil
}

// step derives generation gen's key and nonce from its ratchet secret and,
// when wantNext, the next ratchet secret.
func (t *SecretTree) step(secret []byte, gen uint32, wantKey bool) (kn KeyNonce, next []byte, err error) {
	kn.Generation = gen
	if !wantKey {
		next, err = t.s.DeriveTreeSecret(secret, "secret", gen, t.s.Nh())
		return kn, next, err
	}
	out, err := t.s.DeriveTreeSecrets(secret, gen, stepLabels[:], []int{t.s.Nk(), t.s.Nn(), t.s.Nh()})
	if err != nil {
		return kn, nil, err
	}
	return KeyNonce{Generation: gen, Key: out[0], Nonce: out[1]}, out[2], nil
}

// stepLabels are the labels of a ratchet step's key, nonce and next
// secret (RFC 9420 §9.1).
var stepLabels = [...]string{"key", "nonce", "secret"}

// Next returns the key and nonce of the next generation of leaf's
// ratchet, for sending, and moves the ratchet past it.
func (t *SecretTree) Next(leaf uint32, typ RatchetType) (KeyNonce, error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return KeyNonce{}, err
	}
	if r.next > 0xFFFFFFFF {
		return KeyNonce{}, fmt.Errorf("%w: %s ratchet of leaf %d exhausted", ErrTooFar, typ, leaf)
	}
	kn, next, err := t.step(r.secret, uint32(r.next), true)
	if err != nil {
		return KeyNonce{}, fmt.Errorf("mls schedule: ratchet step: %w", err)
	}
	clear(r.secret)
	r.secret, r.next = next, r.next+1
	return kn, nil
}

// Clear zeroes every secret and key the tree holds, for when its epoch is
// retired. The tree is unusable afterwards.
func (t *SecretTree) Clear() {
	for x, sec := range t.nodes {
		clear(sec)
		delete(t.nodes, x)
	}
	for id, r := range t.ratchets {
		clear(r.secret)
		r.prune(1 << 32)
		delete(t.ratchets, id)
	}
	t.leaves = 0
}
