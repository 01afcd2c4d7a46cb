package mls

import (
	"fmt"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/message"
	"hearth/keys/mls/treekem"
	"hearth/keys/mls/treemath"
)

// SealTo encrypts pt to the current leaf encryption key of the member at
// leaf l (HPKE EncryptWithLabel with label and context), so that only
// that member's device can open it with OpenSealed while its leaf key is
// unchanged. The result is the encoded HPKECiphertext.
func (g *Group) SealTo(l treemath.LeafIndex, label string, context, pt []byte) ([]byte, error) {
	leaf := g.st.tree.Leaf(l)
	if leaf == nil {
		return nil, fmt.Errorf("%w: leaf %d is blank", treekem.ErrTree, l)
	}
	ct, err := g.s.EncryptWithLabel(leaf.EncryptionKey, label, context, pt)
	if err != nil {
		return nil, fmt.Errorf("mls: seal to leaf %d: %w", l, err)
	}
	w := codec.NewWriter(nil)
	w.Opaque(ct.KEMOutput)
	w.Opaque(ct.Ciphertext)
	return w.Bytes(), nil
}

// OpenSealed decrypts what another member sealed with SealTo to this
// member's current leaf key.
func (g *Group) OpenSealed(label string, context, sealed []byte) ([]byte, error) {
	r := codec.NewReader(sealed)
	var ct message.HPKECiphertext
	ct.KEMOutput, ct.Ciphertext = r.Opaque(), r.Opaque()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: sealed data: %v", message.ErrMalformed, err)
	}
	priv, ok := g.st.priv.Key(g.st.priv.Self().NodeIndex())
	if !ok {
		return nil, fmt.Errorf("%w: no private leaf key", treekem.ErrTree)
	}
	pt, err := g.s.DecryptWithLabel(priv, label, context, ct)
	if err != nil {
		return nil, fmt.Errorf("mls: open sealed: %w", err)
	}
	return pt, nil
}
