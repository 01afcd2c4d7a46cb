package mlsgroup

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"hearth/client/e2ee"
	"hearth/keys/groupauth"
	"hearth/keys/mls"
	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// Engine makes and restores keys/mls groups for the client.
type Engine struct {
	Suite suite.ID         // default suite.Default
	Rand  io.Reader        // default crypto/rand
	Now   func() time.Time // default time.Now
}

var _ e2ee.Engine = (*Engine)(nil)

// New returns an Engine with the default suite.
func New() e2ee.Engine { return &Engine{} }

func (e *Engine) suite() (*suite.Suite, error) {
	id := e.Suite
	if id == 0 {
		id = suite.Default
	}
	return suite.Lookup(id)
}

func (e *Engine) rand() io.Reader {
	if e.Rand == nil {
		return rand.Reader
	}
	return e.Rand
}

func (e *Engine) config(v e2ee.CredentialValidator) mls.Config {
	return mls.Config{Validator: v, Rand: e.rand(), Now: e.Now}
}

func (e *Engine) signer(s *suite.Suite, self e2ee.Self) (*suite.Signer, error) {
	if len(self.SignatureKey) == 0 {
		return nil, errors.New("mlsgroup: no signature key")
	}
	return s.NewSigner(self.SignatureKey.Seed())
}

// NewKeyPackage makes a KeyPackage for self's device credential.
func (e *Engine) NewKeyPackage(self e2ee.Self) (e2ee.KeyPackage, error) {
	s, err := e.suite()
	if err != nil {
		return e2ee.KeyPackage{}, err
	}
	signer, err := e.signer(s, self)
	if err != nil {
		return e2ee.KeyPackage{}, err
	}
	opts := mls.KeyPackageOptions{Capabilities: adminCaps}
	if e.Now != nil {
		opts.Now = e.Now()
	}
	kp, priv, err := mls.NewKeyPackage(s, e.rand(), signer, mls.BasicCredential(self.Address), opts)
	if err != nil {
		return e2ee.KeyPackage{}, fmt.Errorf("mlsgroup: key package: %w", err)
	}
	msg := (&mls.MLSMessage{WireFormat: mls.WireKeyPackage, KeyPackage: kp}).Marshal()
	w := codec.NewWriter(nil)
	w.Opaque(kp.Marshal())
	w.Opaque(priv.Marshal())
	return e2ee.KeyPackage{Message: msg, Ref: kp.Ref(s), Private: w.Bytes()}, nil
}

// openPrivate decodes what NewKeyPackage stored as Private.
func openPrivate(b []byte) (*mls.KeyPackage, *mls.KeyPackagePrivate, error) {
	r := codec.NewReader(b)
	kpb, privb := r.Opaque(), r.Opaque()
	if err := r.Done(); err != nil {
		return nil, nil, fmt.Errorf("mlsgroup: stored key package: %w", err)
	}
	kp := new(mls.KeyPackage)
	if err := kp.Unmarshal(kpb); err != nil {
		return nil, nil, fmt.Errorf("mlsgroup: stored key package: %w", err)
	}
	priv, err := mls.UnmarshalKeyPackagePrivate(privb)
	if err != nil {
		return nil, nil, err
	}
	return kp, priv, nil
}

// adminCaps lists Hearth's group admin extension, so that groups carrying
// it can add this device.
var adminCaps = mls.Capabilities{Extensions: []mls.ExtensionType{groupauth.ExtensionType}}

// Create starts a one-member group whose GroupContext carries the group
// admin public key adminPub (none if nil).
func (e *Engine) Create(groupID []byte, self e2ee.Self, v e2ee.CredentialValidator, adminPub []byte) (e2ee.Group, error) {
	s, err := e.suite()
	if err != nil {
		return nil, err
	}
	signer, err := e.signer(s, self)
	if err != nil {
		return nil, err
	}
	g, err := mls.NewGroup(e.config(v), s, groupID, signer, mls.BasicCredential(self.Address), groupOptions(adminPub))
	if err != nil {
		return nil, fmt.Errorf("mlsgroup: create: %w", err)
	}
	return &group{g: g, v: v}, nil
}

// Join opens a Welcome with whichever stored KeyPackage it is addressed
// to, taking the ratchet tree from groupInfo when there is one (see
// joinWithTree).
func (e *Engine) Join(welcome, groupInfo []byte, self e2ee.Self, private func(ref []byte) ([]byte, error), v e2ee.CredentialValidator) (e2ee.Group, []byte, error) {
	if len(groupInfo) > 0 {
		return e.joinWithTree(welcome, groupInfo, private, v)
	}
	g, ref, err := e.join(welcome, private, v, mls.JoinOptions{})
	if err != nil {
		return nil, nil, err
	}
	return &group{g: g, v: v}, ref, nil
}

// join opens welcome with the first stored KeyPackage it names and returns
// the group and that KeyPackage's reference.
func (e *Engine) join(welcome []byte, private func(ref []byte) ([]byte, error), v e2ee.CredentialValidator, opts mls.JoinOptions) (*mls.Group, []byte, error) {
	refs, err := mls.WelcomeKeyPackageRefs(welcome)
	if err != nil {
		return nil, nil, fmt.Errorf("mlsgroup: join: %w", err)
	}
	for _, ref := range refs {
		raw, err := private(ref)
		if err != nil {
			continue // addressed to another device
		}
		kp, priv, err := openPrivate(raw)
		if err != nil {
			return nil, nil, err
		}
		g, err := mls.JoinFromWelcome(e.config(v), welcome, kp, priv, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("mlsgroup: join: %w", err)
		}
		return g, ref, nil
	}
	return nil, nil, errors.New("mlsgroup: join: the Welcome names none of this device's KeyPackages")
}

// Load restores a group saved with MarshalSplit (or Marshal); tree
// returns a stored tree by reference. A missing tree, or one that does
// not match its reference, fails the load. Without tree, state must be
// whole (saved with Marshal).
func (e *Engine) Load(state []byte, tree func(ref []byte) ([]byte, error), self e2ee.Self, v e2ee.CredentialValidator) (e2ee.Group, error) {
	var g *mls.Group
	var err error
	if tree == nil {
		g, err = mls.UnmarshalGroupConfig(state, e.config(v))
	} else {
		lookup := func(r mls.TreeRef) ([]byte, error) { return tree(r[:]) }
		g, err = mls.UnmarshalGroupSplit(state, lookup, e.config(v))
	}
	if err != nil {
		return nil, fmt.Errorf("mlsgroup: load: %w", err)
	}
	return &group{g: g, v: v}, nil
}

// JoinExternal joins by external commit. keys/mls moves the new member to
// the new epoch at once, so the returned group has nothing pending: if the
// hub refuses the commit, the client drops the group.
func (e *Engine) JoinExternal(groupInfo []byte, self e2ee.Self, v e2ee.CredentialValidator) (e2ee.Group, e2ee.Commit, error) {
	var m mls.MLSMessage
	if err := m.Unmarshal(groupInfo); err != nil || m.GroupInfo == nil {
		return nil, e2ee.Commit{}, fmt.Errorf("mlsgroup: external join: not a GroupInfo: %v", err)
	}
	s, err := suite.Lookup(m.GroupInfo.GroupContext.CipherSuite)
	if err != nil {
		return nil, e2ee.Commit{}, fmt.Errorf("mlsgroup: external join: %w", err)
	}
	signer, err := e.signer(s, self)
	if err != nil {
		return nil, e2ee.Commit{}, err
	}
	opts := mls.ExternalJoinOptions{Resync: true, Leaf: mls.KeyPackageOptions{Capabilities: adminCaps}}
	g, commit, err := mls.JoinExternal(e.config(v), groupInfo, signer, mls.BasicCredential(self.Address), opts)
	if err != nil {
		return nil, e2ee.Commit{}, fmt.Errorf("mlsgroup: external join: %w", err)
	}
	// The GroupInfo of the new epoch goes with the commit, so that the
	// hub's copy stays current for the next device that joins or heals.
	gi, err := g.GroupInfo()
	if err != nil {
		return nil, e2ee.Commit{}, fmt.Errorf("mlsgroup: external join: %w", err)
	}
	return &group{g: g, v: v}, e2ee.Commit{Message: commit, Added: []string{self.Address}, GroupInfo: gi}, nil
}

func groupOptions(adminPub []byte) mls.GroupOptions {
	opts := mls.GroupOptions{Leaf: mls.KeyPackageOptions{Capabilities: adminCaps}}
	if adminPub != nil {
		opts.Extensions = mls.Extensions{{Type: groupauth.ExtensionType, Data: adminPub}}
	}
	return opts
}
