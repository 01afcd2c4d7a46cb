package convstate

import (
	"errors"
	"fmt"

	"hearth/client/e2ee"
	"hearth/client/store"
)

// States loads and saves conversations' MLS states in the profile store:
// Engine restores them (wrapped by Cache), Cache takes back groups that
// were only read.
type States struct {
	Engine e2ee.Engine
	Cache  *e2ee.Cache
}

// ErrDamagedState is wrapped by Load when the stored state (or a tree it
// names) is there but does not load: this device cannot follow the
// conversation with it, as if it had none.
var ErrDamagedState = errors.New("the stored group state does not load")

// Load restores conv's MLS state with its trees from the same
// transaction; a state saved whole loads too and is saved split next time.
func (s States) Load(tx *store.Tx, conv string, self e2ee.Self, v e2ee.CredentialValidator) (e2ee.Group, error) {
	state, err := tx.Group(conv)
	if err != nil {
		return nil, err
	}
	g, err := s.Engine.Load(state, func(ref []byte) ([]byte, error) { return tx.GroupTree(conv, ref) }, self, v)
	if err != nil {
		return nil, fmt.Errorf("client: load group %s: %w: %w", conv, ErrDamagedState, err)
	}
	return g, nil
}

// Save stores g as conv's MLS state without its trees, each of which the
// store writes only when it does not hold it yet; trees the state no
// longer names are deleted in the same transaction, so state and trees
// always match on disk.
func (s States) Save(tx *store.Tx, conv string, g e2ee.Group) error {
	state, trees, err := g.MarshalSplit()
	if err != nil {
		return fmt.Errorf("client: save group %s: %w", conv, err)
	}
	if err := tx.PutGroupSplit(conv, state, trees); err != nil {
		return fmt.Errorf("client: save group %s: %w", conv, err)
	}
	return nil
}

// View runs fn on conv's group for reading only (Members, Epoch) and then
// gives the group back to the cache.
func (s States) View(tx *store.Tx, conv string, self e2ee.Self, v e2ee.CredentialValidator, fn func(e2ee.Group) error) error {
	g, err := s.Load(tx, conv, self, v)
	if err != nil {
		return err
	}
	defer s.Cache.Release(g)
	return fn(g)
}

// GroupInfo returns the signed GroupInfo of conv's current epoch (the
// creator registers the conversation at the hub with epoch 0's).
func (s States) GroupInfo(tx *store.Tx, conv string, self e2ee.Self, v e2ee.CredentialValidator) ([]byte, error) {
	g, err := s.Load(tx, conv, self, v)
	if err != nil {
		return nil, err
	}
	return g.GroupInfo()
}
