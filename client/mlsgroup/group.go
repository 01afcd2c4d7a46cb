package mlsgroup

import (
	"fmt"

	"hearth/client/e2ee"
	"hearth/keys/mls"
)

// group adapts *mls.Group to e2ee.Group.
type group struct {
	g *mls.Group
	v e2ee.CredentialValidator // the one the group checks members with
}

var _ e2ee.Group = (*group)(nil)

func (g *group) Epoch() uint64 { return g.g.Epoch() }

// GroupInfo is the signed GroupInfo of the current epoch, with the tree.
func (g *group) GroupInfo() ([]byte, error) { return g.g.GroupInfo() }

func (g *group) Members() []string {
	if ids := g.g.MemberIdentities(); len(ids) > 0 {
		return ids
	}
	return nil
}

func (g *group) Encrypt(plaintext []byte) ([]byte, error) {
	return g.g.Encrypt(plaintext, nil)
}

func (g *group) Process(msg []byte) (e2ee.Received, error) {
	g.prefetch(msg)
	before, epoch := g.g.Extensions(), g.g.Epoch()
	r, err := g.g.Process(msg)
	if err != nil {
		return e2ee.Received{}, err
	}
	rcv := e2ee.Received{
		Sender:      string(r.SenderIdentity),
		Application: r.Kind == mls.ContentApplication,
		Plaintext:   r.Plaintext,
	}
	if r.Kind == mls.ContentCommit {
		after := g.g.Extensions()
		if r.SelfRemoved {
			// The group stays at the old epoch; the commit's own view of
			// the next one says whether it changed the extensions (an
			// admin key rotated away from this removed device).
			after = r.Extensions
		}
		commitInfo(&rcv, r, before, after, epoch)
	}
	return rcv, nil
}

// prefetch tells the validator about the members a commit adds, before
// keys/mls checks them one by one, so that it fetches their device lists
// at once (a commit adding 256 users would otherwise cost 256 round trips
// on every member that processes it). Only a PublicMessage can be a
// commit: the PrivateMessages (application messages) are not decoded a
// second time to find out.
func (g *group) prefetch(msg []byte) {
	if wf, ok := mls.PeekWireFormat(msg); ok && wf != mls.WirePublicMessage {
		return
	}
	env, err := mls.Inspect(msg)
	if err != nil || env.WireFormat != mls.WirePublicMessage || env.ContentType != mls.ContentCommit || len(env.Added) < 2 {
		return
	}
	g.v.PrefetchMembers(env.Added)
}

// Commit adds the devices of keyPackages (MLSMessage-encoded) and removes
// the members with the given device addresses.
func (g *group) Commit(keyPackages [][]byte, remove []string) (e2ee.Commit, error) {
	opts, out, err := g.options(keyPackages, remove)
	if err != nil {
		return out, err
	}
	return g.commit(opts, out)
}

// options builds the commit: adds by value without a path unless removes
// need one (keys/mls decides), and a Welcome without the ratchet tree,
// which new members take from the GroupInfo the hub delivers with the
// Welcome (docs/decisions/0004-large-groups.md).
func (g *group) options(keyPackages [][]byte, remove []string) (mls.CommitOptions, e2ee.Commit, error) {
	opts := mls.CommitOptions{OmitTreeInWelcome: true}
	var out e2ee.Commit
	for _, b := range keyPackages {
		var m mls.MLSMessage
		if err := m.Unmarshal(b); err != nil || m.KeyPackage == nil {
			return opts, out, fmt.Errorf("mlsgroup: claimed key package is not an MLSMessage(KeyPackage): %v", err)
		}
		opts.Add = append(opts.Add, m.KeyPackage)
		out.Added = append(out.Added, string(m.KeyPackage.LeafNode.Credential.Identity))
	}
	for _, addr := range remove {
		l, ok := g.g.LeafOf([]byte(addr))
		if !ok {
			continue
		}
		opts.Remove = append(opts.Remove, l)
		out.Removed = append(out.Removed, addr)
	}
	return opts, out, nil
}

func (g *group) commit(opts mls.CommitOptions, out e2ee.Commit) (e2ee.Commit, error) {
	res, err := g.g.Commit(opts)
	if err != nil {
		return e2ee.Commit{}, fmt.Errorf("mlsgroup: commit: %w", err)
	}
	out.Message, out.Welcome, out.GroupInfo = res.Commit, res.Welcome, res.GroupInfo
	return out, nil
}

// MergeCommit applies the pending commit. A group with none (an external
// join, which keys/mls applies at once) has nothing to merge.
func (g *group) MergeCommit() error {
	if _, ok := g.g.PendingCommit(); !ok {
		return nil
	}
	_, err := g.g.ApplyPendingCommit()
	return err
}

func (g *group) DiscardCommit() { g.g.DiscardPendingCommit() }

func (g *group) Marshal() ([]byte, error) { return g.g.Marshal() }

// MarshalSplit saves the state without its ratchet trees, which come back
// by reference (the raw bytes of their mls.TreeRef); see
// mls.Group.MarshalSplit.
func (g *group) MarshalSplit() ([]byte, map[string][]byte, error) {
	state, trees, err := g.g.MarshalSplit()
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string][]byte, len(trees))
	for ref, b := range trees {
		out[string(ref[:])] = b
	}
	return state, out, nil
}
