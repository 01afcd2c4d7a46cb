package mls

import (
	"fmt"
	"maps"
	"slices"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// groupStateVersion prefixes a marshaled Group; splitStateVersion one
// saved with MarshalSplit (trees by reference; group_split.go).
const (
	groupStateVersion = 1
	// splitTreesVersion: trees by ref, past epochs' members inline (read only).
	splitTreesVersion = 2
	// splitStateVersion: trees and past epochs' member lists by ref.
	splitStateVersion = 3
)

// Marshal serializes everything the member needs to continue: tree,
// private keys, epoch secrets, secret trees (current and retained past
// epochs), transcript hash, cached proposals, pending commit and signer.
// The output is secret: keep it in the device's encrypted store. Save it
// before sending a message or acknowledging a processed one.
func (g *Group) Marshal() ([]byte, error) {
	return g.marshal(groupStateVersion, (*treekem.RatchetTree).Marshal, nil), nil
}

// marshal writes the state with the given version; tree writes the
// opaque standing for an epoch state's ratchet tree.
func (g *Group) marshal(version uint8, tree func(*treekem.RatchetTree) []byte, blob func(treekem.TreeRef, []byte)) []byte {
	w := codec.NewWriter(make([]byte, 0, g.sizeHint[version]+g.sizeHint[version]/8+256))
	w.Uint8(version)
	w.Uint16(uint16(g.s.ID()))
	w.Opaque(g.signer.PrivateBytes())
	w.Bool(g.removed)
	writeEpochState(w, g.st, tree)
	codec.WriteList(w, g.past, func(w *codec.Writer, p *pastEpoch) {
		w.Vector(p.ctx.Encode)
		if version == splitStateVersion {
			w.Opaque(p.membersRef(blob))
		} else {
			writeMembers(w, p.members)
		}
		w.Opaque(p.keys.SenderDataSecret)
		w.Vector(p.keys.Tree.Encode)
	})
	w.Optional(g.pending != nil, func(w *codec.Writer) {
		p := g.pending
		writeEpochState(w, p.next, tree)
		w.Opaque(p.out.Commit)
		w.Opaque(p.out.Welcome)
		w.Opaque(p.out.GroupInfo)
		writeResult(w, p.result)
	})
	g.sizeHint[version] = len(w.Bytes())
	return w.Bytes()
}

func writeEpochState(w *codec.Writer, e *epochState, tree func(*treekem.RatchetTree) []byte) {
	// The nested encodings are written in place (Vector: the same bytes as
	// Opaque of their Marshal, without a buffer each).
	w.Vector(e.ctx.Encode)
	w.Opaque(tree(e.tree))
	e.priv.Encode(w)
	w.Vector(e.secrets.Encode)
	w.Opaque(e.keys.SenderDataSecret)
	w.Vector(e.keys.Tree.Encode)
	w.Opaque(e.interim)
	codec.WriteList(w, e.proposals, func(w *codec.Writer, c handshake.CachedProposal) {
		w.Opaque(c.Ref)
		c.Proposal.Encode(w)
		c.Sender.Encode(w)
	})
	writeSecretMap(w, e.updateKeys)
	codec.WriteList(w, e.resumption, func(w *codec.Writer, r resumptionPSK) {
		w.Uint64(r.epoch)
		w.Opaque(r.secret)
	})
	writeSecretMap(w, e.externalPSKs)
}

func writeSecretMap[V ~[]byte](w *codec.Writer, m map[string]V) {
	if len(m) == 0 { // the usual case: spare the sorted key list
		w.Varint(0)
		return
	}
	codec.WriteList(w, slices.Sorted(maps.Keys(m)), func(w *codec.Writer, k string) {
		w.Opaque([]byte(k))
		w.Opaque(m[k])
	})
}

func readSecretMap[V ~[]byte](r *codec.Reader) map[string]V {
	m := map[string]V{}
	r.Vector(func(r *codec.Reader) {
		k, v := r.Opaque(), r.Opaque()
		if r.Err() == nil {
			m[string(k)] = V(v)
		}
	})
	return m
}

func writeMembers(w *codec.Writer, ms []handshake.Member) {
	codec.WriteList(w, ms, func(w *codec.Writer, m handshake.Member) {
		w.Uint32(uint32(m.Leaf))
		w.Opaque(m.Identity)
		w.Opaque(m.SignatureKey)
	})
}

func readMembers(r *codec.Reader) []handshake.Member {
	return codec.ReadList(r, func(r *codec.Reader) handshake.Member {
		return handshake.Member{Leaf: treemath.LeafIndex(r.Uint32()), Identity: r.Opaque(), SignatureKey: r.Opaque()}
	})
}

func writeResult(w *codec.Writer, res *Result) {
	w.Uint64(res.Epoch)
	res.Sender.Encode(w)
	w.Opaque(res.SenderIdentity)
	writeMembers(w, res.Added)
	writeMembers(w, res.Removed)
	codec.WriteList(w, res.Updated, func(w *codec.Writer, l treemath.LeafIndex) { w.Uint32(uint32(l)) })
}

func readResult(r *codec.Reader) *Result {
	res := &Result{Kind: message.ContentCommit, Epoch: r.Uint64()}
	res.Sender.Decode(r)
	res.SenderIdentity = r.Opaque()
	res.Added, res.Removed = readMembers(r), readMembers(r)
	res.Updated = codec.ReadList(r, func(r *codec.Reader) treemath.LeafIndex { return treemath.LeafIndex(r.Uint32()) })
	return res
}

// UnmarshalGroup restores a Group saved with Marshal, with default
// configuration and validator v.
func UnmarshalGroup(b []byte, v handshake.CredentialValidator) (*Group, error) {
	return UnmarshalGroupConfig(b, Config{Validator: v})
}

// UnmarshalGroupConfig restores a Group saved with Marshal. Damaged or
// inconsistent state is refused.
func UnmarshalGroupConfig(b []byte, cfg Config) (*Group, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &stateReader{r: codec.NewReader(b)}
	g := d.group(cfg)
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("%w: group state: %w", message.ErrMalformed, err)
	}
	return g, nil
}

// stateReader decodes group state, keeping the first error.
type stateReader struct {
	r   *codec.Reader
	s   *suite.Suite
	err error
	// trees resolves the references of a split state (versions 2 and 3:
	// trees, and in 3 past epochs' member lists); nil when only whole
	// states (version 1) are accepted.
	trees   func(treekem.TreeRef) ([]byte, error)
	split   bool  // the state being read is split
	version uint8 // of the state being read
}

// use makes r (a vector's or optional's sub-reader) current until the
// returned function restores the outer one.
func (d *stateReader) use(r *codec.Reader) func() {
	outer := d.r
	d.r = r
	return func() { d.r = outer }
}

func (d *stateReader) fail(err error) {
	if d.err == nil && err != nil {
		d.err = err
		d.r.Fail(err)
	}
}

func (d *stateReader) done() error {
	if d.err != nil {
		return d.err
	}
	return d.r.Done()
}

func (d *stateReader) group(cfg Config) *Group {
	r := d.r
	v := r.Uint8()
	d.version = v
	switch split := v == splitStateVersion || v == splitTreesVersion; {
	case r.Err() != nil:
		return nil
	case split && d.trees == nil:
		d.fail(errSplitState)
		return nil
	case split:
		d.split = true
	case v != groupStateVersion:
		d.fail(fmt.Errorf("version %d", v))
		return nil
	}
	s, err := suite.Lookup(suite.ID(r.Uint16()))
	if r.Err() != nil {
		return nil
	}
	d.fail(err)
	d.s = s
	signerKey := r.Opaque()
	if d.err != nil || r.Err() != nil {
		return nil
	}
	signer, err := s.NewSigner(signerKey)
	d.fail(err)
	g := &Group{cfg: cfg, s: s, signer: signer, removed: r.Bool()}
	g.st = d.epochState()
	g.past = codec.ReadList(r, func(r *codec.Reader) *pastEpoch {
		defer d.use(r)()
		p := &pastEpoch{}
		d.context(&p.ctx)
		if d.version == splitStateVersion {
			p.members = d.membersByRef(r.Opaque())
		} else {
			p.members = readMembers(r)
		}
		p.keys = d.privateKeys()
		return p
	})
	r.Optional(func(r *codec.Reader) {
		defer d.use(r)()
		p := &pendingCommit{next: d.epochState()}
		p.out = CommitOutput{Commit: r.Opaque(), Welcome: r.Opaque(), GroupInfo: r.Opaque()}
		p.result = readResult(r)
		if len(p.out.Welcome) == 0 {
			p.out.Welcome = nil
		}
		if p.next != nil {
			p.out.Epoch = p.next.ctx.Epoch
		}
		p.out.Added, p.out.Removed = p.result.Added, p.result.Removed
		g.pending = p
	})
	if d.err == nil && r.Err() == nil && g.st != nil && g.signer != nil {
		if !slices.Equal(g.st.tree.Leaf(g.st.priv.Self()).SignatureKey, g.signer.Public()) {
			d.fail(fmt.Errorf("signer does not match own leaf"))
		}
	}
	return g
}

func (d *stateReader) context(ctx *message.GroupContext) {
	b := d.r.Opaque()
	if d.r.Err() == nil {
		d.fail(ctx.Unmarshal(b))
	}
}

func (d *stateReader) tree() *treekem.RatchetTree {
	b := d.r.Opaque()
	if d.r.Err() != nil || d.err != nil {
		return nil
	}
	if d.split {
		return d.treeByRef(b)
	}
	t, err := treekem.UnmarshalRatchetTree(d.s, b)
	d.fail(err)
	return t
}

func (d *stateReader) privateKeys() message.PrivateKeys {
	sds := d.r.Opaque()
	b := d.r.Opaque()
	if d.r.Err() != nil || d.err != nil {
		return message.PrivateKeys{}
	}
	if len(sds) != d.s.Nh() {
		d.fail(fmt.Errorf("sender data secret is %d bytes", len(sds)))
	}
	st, err := schedule.UnmarshalSecretTree(b)
	d.fail(err)
	return message.PrivateKeys{SenderDataSecret: sds, Tree: st}
}

func (d *stateReader) epochState() *epochState {
	r := d.r
	e := &epochState{}
	d.context(&e.ctx)
	e.tree = d.tree()
	e.priv = new(treekem.PrivateTree)
	e.priv.Decode(r)
	b := r.Opaque()
	if r.Err() != nil || d.err != nil {
		return nil
	}
	ep, err := schedule.UnmarshalEpoch(b)
	d.fail(err)
	e.secrets = ep
	e.keys = d.privateKeys()
	e.interim = r.Opaque()
	e.proposals = codec.ReadList(r, func(r *codec.Reader) handshake.CachedProposal {
		c := handshake.CachedProposal{Ref: r.Opaque(), Proposal: new(message.Proposal)}
		c.Proposal.Decode(r)
		c.Sender.Decode(r)
		return c
	})
	e.updateKeys = readSecretMap[suite.HPKEPrivateKey](r)
	e.resumption = codec.ReadList(r, func(r *codec.Reader) resumptionPSK {
		return resumptionPSK{epoch: r.Uint64(), secret: r.Opaque()}
	})
	e.externalPSKs = readSecretMap[[]byte](r)
	if r.Err() == nil && d.err == nil {
		d.checkEpochState(e)
	}
	return e
}

// checkEpochState refuses state whose parts do not fit together.
func (d *stateReader) checkEpochState(e *epochState) {
	switch {
	case e.ctx.CipherSuite != d.s.ID() || e.secrets.Suite != d.s.ID():
		d.fail(fmt.Errorf("suite mismatch"))
	case e.tree.Leaf(e.priv.Self()) == nil:
		d.fail(fmt.Errorf("own leaf %d is blank", e.priv.Self()))
	case e.keys.Tree.LeafCount() != e.tree.NumLeaves():
		d.fail(fmt.Errorf("secret tree has %d leaves, ratchet tree %d", e.keys.Tree.LeafCount(), e.tree.NumLeaves()))
	default:
		d.fail(e.priv.Consistent(e.tree))
	}
}
