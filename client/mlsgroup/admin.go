package mlsgroup

import (
	"bytes"
	"fmt"

	"hearth/client/e2ee"
	"hearth/keys/groupauth"
	"hearth/keys/mls"
)

// AdminKey returns the group admin public key of the GroupContext.
func (g *group) AdminKey() []byte { return adminKeyOf(g.g.Extensions()) }

func adminKeyOf(ext mls.Extensions) []byte {
	b, _ := ext.Find(groupauth.ExtensionType)
	return b
}

// EpochAuthenticator is the RFC 9420 epoch authenticator of the current epoch.
func (g *group) EpochAuthenticator() []byte { return g.g.EpochAuthenticator() }

// CommitAdmin commits like Commit, optionally replacing the admin key
// (req.SetAdminKey), with the authenticated_data req.Sign returns for the
// commit's roster change.
func (g *group) CommitAdmin(req e2ee.AdminCommit) (e2ee.Commit, error) {
	opts, out, err := g.options(req.KeyPackages, req.Remove)
	if err != nil {
		return out, err
	}
	ch := groupauth.Change{Added: out.Added, Removed: out.Removed}
	if req.SetAdminKey {
		opts.Extensions = mls.Extensions{{Type: groupauth.ExtensionType, Data: req.NewAdminKey}}
		for _, e := range g.g.Extensions() {
			if e.Type != groupauth.ExtensionType {
				opts.Extensions = append(opts.Extensions, e)
			}
		}
		ch.NewAdminKey, ch.ExtChanged = req.NewAdminKey, true
	}
	if req.Sign != nil {
		opts.AuthenticatedData = req.Sign(g.g.Epoch(), ch)
	}
	return g.commit(opts, out)
}

// SealTo encrypts pt to member's current leaf key.
func (g *group) SealTo(member string, label string, context, pt []byte) ([]byte, error) {
	l, ok := g.g.LeafOf([]byte(member))
	if !ok {
		return nil, fmt.Errorf("mlsgroup: %s is not a member", member)
	}
	return g.g.SealTo(l, label, context, pt)
}

// OpenSealed decrypts what was sealed to this device's leaf key.
func (g *group) OpenSealed(label string, context, ct []byte) ([]byte, error) {
	return g.g.OpenSealed(label, context, ct)
}

// commitInfo fills the commit details of a processed commit.
func commitInfo(rcv *e2ee.Received, r *mls.Result, before mls.Extensions, after mls.Extensions, epoch uint64) {
	rcv.Commit = true
	rcv.EpochBefore = epoch
	rcv.AuthenticatedData = r.AuthenticatedData
	for _, m := range r.Added {
		rcv.Added = append(rcv.Added, string(m.Identity))
	}
	for _, m := range r.Removed {
		rcv.Removed = append(rcv.Removed, string(m.Identity))
	}
	rcv.AdminKeyBefore, rcv.AdminKeyAfter = adminKeyOf(before), adminKeyOf(after)
	rcv.ExtChanged = !extEqual(before, after)
}

func extEqual(a, b mls.Extensions) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}
