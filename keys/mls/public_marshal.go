package mls

import (
	"bytes"
	"fmt"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

// publicStateVersion prefixes a marshaled PublicGroup.
const publicStateVersion = 1

// Marshal serializes the public state (version 1): the suite, the
// GroupContext, the ratchet tree in its ratchet_tree encoding, the interim
// transcript hash and the proposals cached in the epoch. Nothing in it is
// secret. The tree is almost all of it (about 1.4 KB per member on suite
// 0xF001, 0.2 KB on suite 1).
func (p *PublicGroup) Marshal() []byte {
	tree := p.tree.Marshal()
	w := codec.NewWriter(make([]byte, 0, len(tree)+1024))
	w.Uint8(publicStateVersion)
	w.Uint16(uint16(p.s.ID()))
	w.Opaque(p.ctx.Marshal())
	w.Opaque(tree)
	w.Opaque(p.interim)
	codec.WriteList(w, p.proposals, func(w *codec.Writer, c handshake.CachedProposal) {
		w.Opaque(c.Ref)
		c.Proposal.Encode(w)
		c.Sender.Encode(w)
	})
	return w.Bytes()
}

// UnmarshalPublicGroup restores a PublicGroup saved with Marshal. It
// checks that the parts fit together (suite, sizes, the tree's hash
// against the GroupContext) but does not re-verify the tree's signatures
// and parent hashes or the cached proposals, which were verified when
// they entered the state: keep the state where only the server writes it.
func UnmarshalPublicGroup(b []byte) (*PublicGroup, error) {
	p, err := unmarshalPublicGroup(bytes.Clone(b))
	if err != nil {
		return nil, fmt.Errorf("%w: public group state: %w", message.ErrMalformed, err)
	}
	return p, nil
}

func unmarshalPublicGroup(b []byte) (*PublicGroup, error) {
	r := codec.NewReader(b)
	if v := r.Uint8(); r.Err() == nil && v != publicStateVersion {
		return nil, fmt.Errorf("version %d", v)
	}
	id := suite.ID(r.Uint16())
	ctxb, treeb, interim := r.Opaque(), r.Opaque(), r.Opaque()
	props := codec.ReadList(r, func(r *codec.Reader) handshake.CachedProposal {
		c := handshake.CachedProposal{Ref: r.Opaque(), Proposal: new(message.Proposal)}
		c.Proposal.Decode(r)
		c.Sender.Decode(r)
		return c
	})
	if err := r.Done(); err != nil {
		return nil, err
	}
	s, err := suite.Lookup(id)
	if err != nil {
		return nil, err
	}
	p := &PublicGroup{s: s, interim: interim, proposals: props}
	if err := p.ctx.Unmarshal(ctxb); err != nil {
		return nil, err
	}
	if p.tree, err = treekem.UnmarshalRatchetTree(s, treeb); err != nil {
		return nil, err
	}
	return p, p.consistent()
}

// consistent refuses a state whose parts do not fit together.
func (p *PublicGroup) consistent() error {
	switch {
	case p.ctx.CipherSuite != p.s.ID() || p.ctx.Version != message.MLS10:
		return fmt.Errorf("suite or version mismatch")
	case len(p.interim) != p.s.Nh():
		return fmt.Errorf("interim transcript hash is %d bytes", len(p.interim))
	case !bytes.Equal(p.tree.TreeHash(), p.ctx.TreeHash):
		return fmt.Errorf("tree hash does not match the GroupContext")
	}
	seen := map[string]bool{}
	for _, c := range p.proposals {
		if len(c.Ref) != p.s.Nh() || seen[string(c.Ref)] {
			return fmt.Errorf("cached proposal %x", c.Ref)
		}
		seen[string(c.Ref)] = true
	}
	return nil
}
