package schedule

import (
	"fmt"
	"slices"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// stateVersion prefixes serialized state so the format can change.
const stateVersion = 1

// Marshal serializes the epoch secrets. The output is secret: store it
// only in the device's encrypted store.
func (e *Epoch) Marshal() []byte {
	w := codec.NewWriter(nil)
	e.Encode(w)
	return w.Bytes()
}

// Encode appends what Marshal returns to w (a caller that embeds the
// state in a larger encoding, as a group's state does, writes it in place).
func (e *Epoch) Encode(w *codec.Writer) {
	w.Uint8(stateVersion)
	w.Uint16(uint16(e.Suite))
	for _, f := range e.fields() {
		w.Opaque(*f)
	}
}

func (e *Epoch) fields() []*[]byte {
	return []*[]byte{&e.JoinerSecret, &e.WelcomeSecret, &e.EpochSecret, &e.SenderDataSecret,
		&e.EncryptionSecret, &e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey,
		&e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret}
}

// UnmarshalEpoch reverses Epoch.Marshal, checking the suite and every
// secret's length.
func UnmarshalEpoch(b []byte) (*Epoch, error) {
	r := codec.NewReader(b)
	if v := r.Uint8(); r.Err() == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: epoch state version %d", ErrEncoding, v)
	}
	e := &Epoch{Suite: suite.ID(r.Uint16())}
	for _, f := range e.fields() {
		*f = clone(r.Opaque())
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: epoch: %v", ErrEncoding, err)
	}
	s, err := suite.Lookup(e.Suite)
	if err != nil {
		return nil, fmt.Errorf("%w: epoch: %v", ErrEncoding, err)
	}
	for i, f := range e.fields() {
		if len(*f) == 0 && i < 3 {
			*f = nil // joiner, welcome and epoch secrets may have been dropped
			continue
		}
		if len(*f) != s.Nh() {
			return nil, fmt.Errorf("%w: epoch secret %d is %d bytes, want %d", ErrEncoding, i, len(*f), s.Nh())
		}
	}
	return e, nil
}

// Marshal serializes the secret tree with its ratchets, skipped keys and
// limits. The output is secret.
func (t *SecretTree) Marshal() []byte {
	w := codec.NewWriter(nil)
	t.Encode(w)
	return w.Bytes()
}

// Encode appends what Marshal returns to w.
func (t *SecretTree) Encode(w *codec.Writer) {
	w.Uint8(stateVersion)
	w.Uint16(uint16(t.s.ID()))
	w.Uint32(t.leaves)
	w.Uint32(t.limits.MaxForward)
	w.Uint32(t.limits.MaxRetained)
	nodes := make([]uint32, 0, len(t.nodes))
	for x := range t.nodes {
		nodes = append(nodes, x)
	}
	slices.Sort(nodes)
	w.Vector(func(w *codec.Writer) {
		for _, x := range nodes {
			w.Uint32(x)
			w.Opaque(t.nodes[x])
		}
	})
	ids := make([]ratchetID, 0, len(t.ratchets))
	for id := range t.ratchets {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ratchetID) int { return int(ratchetOrder(a) - ratchetOrder(b)) })
	w.Vector(func(w *codec.Writer) {
		for _, id := range ids {
			writeRatchet(w, id, t.ratchets[id])
		}
	})
}

func writeRatchet(w *codec.Writer, id ratchetID, r *ratchet) {
	w.Uint32(id.leaf)
	w.Uint8(uint8(id.typ))
	w.Uint64(r.next)
	w.Opaque(r.secret)
	gens := make([]uint32, 0, len(r.skipped))
	for g := range r.skipped {
		gens = append(gens, g)
	}
	slices.Sort(gens)
	w.Vector(func(w *codec.Writer) {
		for _, g := range gens {
			w.Uint32(g)
			w.Opaque(r.skipped[g].Key)
			w.Opaque(r.skipped[g].Nonce)
		}
	})
}

// UnmarshalSecretTree reverses SecretTree.Marshal and validates every
// field, so damaged state is refused rather than half-loaded.
func UnmarshalSecretTree(b []byte) (*SecretTree, error) {
	r := codec.NewReader(b)
	if v := r.Uint8(); r.Err() == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: secret tree state version %d", ErrEncoding, v)
	}
	id := suite.ID(r.Uint16())
	leaves := r.Uint32()
	lim := Limits{MaxForward: r.Uint32(), MaxRetained: r.Uint32()}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: secret tree: %v", ErrEncoding, err)
	}
	s, err := suite.Lookup(id)
	if err != nil {
		return nil, fmt.Errorf("%w: secret tree: %v", ErrEncoding, err)
	}
	t, err := NewSecretTree(s, make([]byte, s.Nh()), leaves, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: secret tree: %v", ErrEncoding, err)
	}
	delete(t.nodes, t.root())
	d := &stateDecoder{t: t, lastNode: -1, lastRat: -1}
	r.Vector(d.node)
	r.Vector(d.ratchet)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: secret tree: %v", ErrEncoding, err)
	}
	return t, nil
}

// stateDecoder reads the node and ratchet lists, which Marshal writes in
// strictly ascending order; anything else is refused so that one state has
// one encoding.
type stateDecoder struct {
	t        *SecretTree
	lastNode int64
	lastRat  int64
}

func (d *stateDecoder) node(r *codec.Reader) {
	x, sec := r.Uint32(), r.Opaque()
	switch {
	case r.Err() != nil:
	case int64(x) <= d.lastNode:
		r.Fail(fmt.Errorf("node %d out of order", x))
	case x >= 2*d.t.leaves-1:
		r.Fail(fmt.Errorf("node %d outside tree of %d leaves", x, d.t.leaves))
	case len(sec) != d.t.s.Nh():
		r.Fail(fmt.Errorf("node %d secret is %d bytes", x, len(sec)))
	default:
		d.t.nodes[x] = clone(sec)
		d.lastNode = int64(x)
	}
}

func (d *stateDecoder) ratchet(r *codec.Reader) {
	id := ratchetID{leaf: r.Uint32(), typ: RatchetType(r.Uint8())}
	rt := &ratchet{next: r.Uint64(), secret: clone(r.Opaque()), skipped: map[uint32]KeyNonce{}}
	lastGen := int64(-1)
	r.Vector(func(r *codec.Reader) {
		kn := KeyNonce{Generation: r.Uint32(), Key: clone(r.Opaque()), Nonce: clone(r.Opaque())}
		switch {
		case r.Err() != nil:
		case int64(kn.Generation) <= lastGen:
			r.Fail(fmt.Errorf("skipped generation %d out of order", kn.Generation))
		case uint64(kn.Generation) >= rt.next:
			r.Fail(fmt.Errorf("skipped generation %d not below next %d", kn.Generation, rt.next))
		case len(kn.Key) != d.t.s.Nk() || len(kn.Nonce) != d.t.s.Nn():
			r.Fail(fmt.Errorf("skipped generation %d has a bad key or nonce size", kn.Generation))
		default:
			rt.skipped[kn.Generation] = kn
			lastGen = int64(kn.Generation)
		}
	})
	switch {
	case r.Err() != nil:
	case id.leaf >= d.t.leaves || (id.typ != Handshake && id.typ != Application):
		r.Fail(fmt.Errorf("ratchet %d/%d outside the tree", id.leaf, id.typ))
	case rt.next > 1<<32 || len(rt.secret) != d.t.s.Nh():
		r.Fail(fmt.Errorf("ratchet %d/%s is malformed", id.leaf, id.typ))
	case ratchetOrder(id) <= d.lastRat:
		r.Fail(fmt.Errorf("ratchet %d/%s out of order", id.leaf, id.typ))
	default:
		d.t.ratchets[id] = rt
		d.lastRat = ratchetOrder(id)
	}
}

func ratchetOrder(id ratchetID) int64 { return int64(id.leaf)*4 + int64(id.typ) }
