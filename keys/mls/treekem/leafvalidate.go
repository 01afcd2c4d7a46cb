package treekem

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"hearth/keys/mls/message"
	"hearth/keys/mls/treemath"
)

// LeafPolicy says where a LeafNode was received, for ValidateLeafNode.
type LeafPolicy struct {
	// Source is the leaf_node_source the context requires: key_package
	// (in a KeyPackage or Add), update (Update proposal) or commit
	// (UpdatePath).
	Source message.LeafNodeSource
	// GroupID and Leaf are the signature context of update and commit
	// leaves; Leaf is also the leaf being replaced (its keys may repeat).
	GroupID []byte
	Leaf    treemath.LeafIndex
	// Required is the group's required_capabilities extension, if any.
	Required *message.RequiredCapabilities
	// Now, if not zero, is checked against a key_package leaf's lifetime.
	Now time.Time
}

// ValidateLeafNode runs the checks of RFC 9420 §7.3 on a LeafNode about to
// enter the tree t, except credential validation (the caller's, through
// keys/identity): source, signature, required capabilities, credential
// type support in both directions, lifetime, extension support, and
// uniqueness of the encryption and signature keys among the members.
func (t *RatchetTree) ValidateLeafNode(leaf *message.LeafNode, pol LeafPolicy) error {
	if leaf.Source != pol.Source {
		return fmt.Errorf("%w: leaf source %d, want %d", ErrTree, leaf.Source, pol.Source)
	}
	if err := leaf.Verify(t.suite, pol.GroupID, pol.Leaf); err != nil {
		return fmt.Errorf("%w: %w", ErrTree, err)
	}
	if err := CheckRequired(&leaf.Capabilities, pol.Required); err != nil {
		return err
	}
	for _, e := range leaf.Extensions {
		if !slices.Contains(leaf.Capabilities.Extensions, e.Type) {
			return fmt.Errorf("%w: leaf extension %d not in its capabilities", ErrTree, e.Type)
		}
	}
	if leaf.Source == message.SourceKeyPackage && !pol.Now.IsZero() {
		now := pol.Now.Unix()
		if now < 0 || uint64(now) < leaf.Lifetime.NotBefore || uint64(now) > leaf.Lifetime.NotAfter {
			return fmt.Errorf("%w: leaf lifetime does not cover %v", ErrTree, pol.Now.UTC())
		}
	}
	replaced := pol.Source == message.SourceUpdate || pol.Source == message.SourceCommit
	if old := t.Leaf(pol.Leaf); pol.Source == message.SourceUpdate && old != nil && bytes.Equal(old.EncryptionKey, leaf.EncryptionKey) {
		return fmt.Errorf("%w: Update keeps the old encryption key", ErrTree)
	}
	for _, m := range t.Members() {
		if replaced && m == pol.Leaf {
			continue
		}
		o := t.Leaf(m)
		if !slices.Contains(o.Capabilities.Credentials, leaf.Credential.Type) {
			return fmt.Errorf("%w: member %d does not support credential type %d", ErrTree, m, leaf.Credential.Type)
		}
		if !slices.Contains(leaf.Capabilities.Credentials, o.Credential.Type) {
			return fmt.Errorf("%w: leaf does not support member %d's credential type %d", ErrTree, m, o.Credential.Type)
		}
		if bytes.Equal(o.EncryptionKey, leaf.EncryptionKey) || bytes.Equal(o.SignatureKey, leaf.SignatureKey) {
			return fmt.Errorf("%w: leaf reuses a key of member %d", ErrTree, m)
		}
	}
	return nil
}

// checkRequired checks that c lists everything req requires.
func CheckRequired(c *message.Capabilities, req *message.RequiredCapabilities) error {
	if req == nil {
		return nil
	}
	for _, e := range req.Extensions {
		if !slices.Contains(c.Extensions, e) {
			return fmt.Errorf("%w: leaf lacks required extension %d", ErrTree, e)
		}
	}
	for _, p := range req.Proposals {
		if !slices.Contains(c.Proposals, p) {
			return fmt.Errorf("%w: leaf lacks required proposal %d", ErrTree, p)
		}
	}
	for _, cr := range req.Credentials {
		if !slices.Contains(c.Credentials, cr) {
			return fmt.Errorf("%w: leaf lacks required credential type %d", ErrTree, cr)
		}
	}
	return nil
}

// IndexOf returns the index of the leaf whose encoding equals leaf's (how
// a new member finds itself in the tree of a Welcome).
func (t *RatchetTree) IndexOf(leaf *message.LeafNode) (treemath.LeafIndex, bool) {
	want := leaf.Marshal()
	for _, l := range t.Members() {
		if bytes.Equal(t.Leaf(l).Marshal(), want) {
			return l, true
		}
	}
	return 0, false
}
