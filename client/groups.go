package client

import (
	"encoding/json"
	"fmt"
	"slices"

	"hearth/client/e2ee"
	"hearth/client/store"
)

// conversation is what this device knows about a conversation besides its
// MLS state: the other users in it, for `send USER` and `history USER`.
type conversation struct {
	ID      string   `json:"id"`
	Peers   []string `json:"peers"` // user@domain of the other users
	Creator string   `json:"creator,omitempty"`
	Group   bool     `json:"group,omitempty"` // a group (has an admin key), not a 1:1
}

func convName(id string) string     { return "conv/" + id }
func directName(user string) string { return "direct/" + user }

// rememberConversation records conv and, for a 1:1, the peer's direct conversation.
func (c *Client) rememberConversation(tx *store.Tx, conv conversation) error {
	raw, err := json.Marshal(conv)
	if err != nil {
		return err
	}
	if err := tx.PutMeta(convName(conv.ID), raw); err != nil {
		return err
	}
	if !conv.Group && len(conv.Peers) == 1 && tx.Meta(directName(conv.Peers[0])) == nil {
		return tx.PutMeta(directName(conv.Peers[0]), []byte(conv.ID))
	}
	return nil
}

// conversationFor resolves a user address or conversation id to a known conversation id.
func conversationFor(tx *store.Tx, target string) (string, bool) {
	if id := tx.Meta(directName(target)); id != nil {
		return string(id), true
	}
	if tx.Meta(convName(target)) != nil {
		return target, true
	}
	return "", false
}

func getConversation(tx *store.Tx, id string) (conversation, error) {
	var conv conversation
	raw := tx.Meta(convName(id))
	if raw == nil {
		return conv, store.ErrNotFound
	}
	err := json.Unmarshal(raw, &conv)
	return conv, err
}

// peersOf lists the users of member device addresses other than self, sorted.
func peersOf(members []string, self string) []string {
	return slices.DeleteFunc(usersOf(members), func(u string) bool { return u == self })
}

// loadGroup restores conv's MLS state with its trees from the same
// transaction; a state saved whole loads too and is saved split next time.
func (c *Client) loadGroup(tx *store.Tx, conv string, self e2ee.Self, v e2ee.CredentialValidator) (e2ee.Group, error) {
	state, err := tx.Group(conv)
	if err != nil {
		return nil, err
	}
	g, err := c.mls.Load(state, func(ref []byte) ([]byte, error) { return tx.GroupTree(conv, ref) }, self, v)
	if err != nil {
		return nil, fmt.Errorf("client: load group %s: %w", conv, err)
	}
	return g, nil
}

// saveGroup stores g as conv's MLS state without its trees, each of which
// the store writes only when it does not hold it yet; trees the state no longer names are deleted in the same
// transaction, so state and trees always match on disk.
func (c *Client) saveGroup(tx *store.Tx, conv string, g e2ee.Group) error {
	state, trees, err := g.MarshalSplit()
	if err != nil {
		return fmt.Errorf("client: save group %s: %w", conv, err)
	}
	if err := tx.PutGroupSplit(conv, state, trees); err != nil {
		return fmt.Errorf("client: save group %s: %w", conv, err)
	}
	return nil
}

// viewGroup runs fn on conv's group for reading only (Members, Epoch) and
// then gives the group back to the cache.
func (c *Client) viewGroup(tx *store.Tx, conv string, self e2ee.Self, v e2ee.CredentialValidator, fn func(e2ee.Group) error) error {
	g, err := c.loadGroup(tx, conv, self, v)
	if err != nil {
		return err
	}
	defer c.gcache.Release(g)
	return fn(g)
}
