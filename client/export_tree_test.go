package client

import (
	"crypto/ed25519"
	"maps"
	"slices"
	"testing"

	"hearth/client/e2ee"
	"hearth/client/store"
)

// wholeGroupState returns conv's saved MLS state in whole form (trees
// embedded, as GroupEngine.Load restores it without a tree lookup), for
// tests that load a state with a bare engine. A split state is restored with its stored
// trees and marshaled whole, outside the group cache.
func (c *Client) wholeGroupState(tx *store.Tx, conv string) ([]byte, error) {
	state, err := tx.Group(conv)
	if err != nil {
		return nil, err
	}
	eng := c.cfg.Groups
	a, err := tx.Account()
	if err != nil {
		return nil, err
	}
	seed, err := tx.Key(store.KeySignature)
	if err != nil {
		return nil, err
	}
	self := e2ee.Self{Address: a.User + "/" + a.DeviceID, SignatureKey: ed25519.NewKeyFromSeed(seed)}
	g, err := eng.Load(state, func(ref []byte) ([]byte, error) { return tx.GroupTree(conv, ref) }, self, acceptMembers{})
	if err != nil {
		return nil, err
	}
	return g.Marshal()
}

// acceptMembers accepts every member (the state was validated when saved).
type acceptMembers struct{}

func (acceptMembers) ValidateMember(identity, signatureKey []byte) error { return nil }
func (acceptMembers) PrefetchMembers([][]byte)                           {}

// TreeState is what this device's store holds for a conversation's MLS
// state: the state bytes, the stored trees by reference, and how many
// trees were ever written for it.
type TreeState struct {
	State  []byte
	Trees  map[string][]byte
	Writes uint64
}

// Refs lists the stored trees' references.
func (s TreeState) Refs() []string { return slices.Sorted(maps.Keys(s.Trees)) }

// TreeState reads conv's stored state and trees.
func (c *Client) TreeState(t *testing.T, conv string) TreeState {
	t.Helper()
	s := TreeState{Trees: map[string][]byte{}}
	err := c.st.View(func(tx *store.Tx) error {
		var err error
		if s.State, err = tx.Group(conv); err != nil {
			return err
		}
		for _, r := range tx.GroupTreeRefs(conv) {
			if s.Trees[string(r)], err = tx.GroupTree(conv, r); err != nil {
				return err
			}
		}
		s.Writes = tx.GroupTreeWrites(conv)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SaveGroupWhole rewrites conv's state in whole form, as a client from
// before split states saved it.
func (c *Client) SaveGroupWhole(t *testing.T, conv string) {
	t.Helper()
	err := c.st.Update(func(tx *store.Tx) error {
		st, err := c.wholeGroupState(tx, conv)
		if err != nil {
			return err
		}
		return tx.PutGroup(conv, st)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// StoredTrees counts the trees stored for conv, with or without a state.
func (c *Client) StoredTrees(t *testing.T, conv string) int {
	t.Helper()
	var n int
	if err := c.st.View(func(tx *store.Tx) error { n = len(tx.GroupTreeRefs(conv)); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
