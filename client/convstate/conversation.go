package convstate

import (
	"slices"
	"strings"

	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Conversation is what this device knows about a conversation besides its
// MLS state: the other users in it, for `send USER` and `history USER`.
type Conversation struct {
	ID      string   `json:"id"`
	Peers   []string `json:"peers"` // user@domain of the other users
	Creator string   `json:"creator,omitempty"`
	Group   bool     `json:"group,omitempty"` // a group (has an admin key), not a 1:1
}

func convName(id string) string     { return "conv/" + id }
func directName(user string) string { return "direct/" + user }

// CommitName is the meta key of conv's pending commit (the Send request
// carrying it, resent under the same message id if the answer is lost).
func CommitName(conv string) string { return "commit/" + conv }

// ExternalName marks a pending commit that is an external join.
func ExternalName(conv string) string { return "external/" + conv }

// RegisteredName marks a conversation the hub knows.
func RegisteredName(conv string) string { return "registered/" + conv }

// ErrRedo is returned when the group moved on while a commit was prepared.
var ErrRedo = wire.Errorf("client.Commit", wire.Code_CODE_STALE_EPOCH, "group changed while preparing a commit")

// Remember records cv and, for a 1:1, the peer's direct conversation.
//
// Two devices that start a 1:1 with each other at the same time (or a
// device that creates one before it has read the Welcome to the peer's)
// make two direct conversations between the same users. Every device
// converges on the one with the smallest conversation id (decision 0007):
// it is the peer's direct conversation as soon as this device knows it,
// future sends go there, and the other one stays readable (Directs,
// `history USER`).
func Remember(tx *store.Tx, cv Conversation) error {
	if err := tx.PutMeta(convName(cv.ID), encodeConversation(cv)); err != nil {
		return err
	}
	if direct(cv) {
		if cur := tx.Meta(directName(cv.Peers[0])); cur == nil || cv.ID < string(cur) {
			return tx.PutMeta(directName(cv.Peers[0]), []byte(cv.ID))
		}
	}
	return nil
}

func direct(cv Conversation) bool { return !cv.Group && len(cv.Peers) == 1 }

// Directs returns the ids of every 1:1 conversation this device knows with
// user, the one sends go to (For) last and the others before it, by id.
func Directs(tx *store.Tx, user string) []string {
	cur := string(tx.Meta(directName(user)))
	var out []string
	for _, id := range tx.MetaNames("conv/") {
		if id == cur {
			continue
		}
		if cv, err := Get(tx, id); err == nil && direct(cv) && cv.Peers[0] == user {
			out = append(out, id)
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// For resolves a user address or conversation id to a known conversation id.
// A conversation id this device holds wins over a 1:1 with a "user" of
// that name (left by a send to the id before this device was added).
func For(tx *store.Tx, target string) (string, bool) {
	if tx.Meta(convName(target)) != nil {
		return target, true
	}
	if id := tx.Meta(directName(target)); id != nil {
		return string(id), true
	}
	return "", false
}

// Get returns the record of conversation id (store.ErrNotFound: none).
func Get(tx *store.Tx, id string) (Conversation, error) {
	var cv Conversation
	raw := tx.Meta(convName(id))
	if raw == nil {
		return cv, store.ErrNotFound
	}
	return decodeConversation(raw)
}

// Forget deletes the record of conversation id, the peer's direct
// conversation when it is this one, and the hub registration mark.
func Forget(tx *store.Tx, id string) error {
	cv, err := Get(tx, id)
	for _, name := range []string{convName(id), RegisteredName(id)} {
		if err := tx.DeleteMeta(name); err != nil {
			return err
		}
	}
	if err == nil && len(cv.Peers) == 1 && string(tx.Meta(directName(cv.Peers[0]))) == id {
		if err := tx.DeleteMeta(directName(cv.Peers[0])); err != nil {
			return err
		}
		// Another direct conversation with the peer (decision 0007) takes over.
		if others := Directs(tx, cv.Peers[0]); len(others) > 0 {
			return tx.PutMeta(directName(cv.Peers[0]), []byte(others[0]))
		}
	}
	return nil
}

// SettleExternal ends an external join: accepted, the group (already in
// the new epoch) stays; refused, this device forgets the conversation and
// a later send looks again.
func SettleExternal(tx *store.Tx, conv string, accepted bool) error {
	for _, name := range []string{CommitName(conv), ExternalName(conv)} {
		if err := tx.DeleteMeta(name); err != nil {
			return err
		}
	}
	if accepted {
		return nil
	}
	if err := Forget(tx, conv); err != nil {
		return err
	}
	return tx.DeleteGroup(conv)
}

// UserOf returns the user part of a device address user@domain/DEVICE.
func UserOf(device string) string {
	if i := strings.LastIndexByte(device, '/'); i >= 0 {
		return device[:i]
	}
	return device
}

// UsersOf returns the users of device addresses, sorted, each once.
func UsersOf(members []string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		out = append(out, UserOf(m))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PeersOf lists the users of member device addresses other than self, sorted.
func PeersOf(members []string, self string) []string {
	return slices.DeleteFunc(UsersOf(members), func(u string) bool { return u == self })
}

// DevicesOf returns the members that are devices of user u.
func DevicesOf(members []string, u string) []string {
	var out []string
	for _, m := range members {
		if strings.HasPrefix(m, u+"/") {
			out = append(out, m)
		}
	}
	return out
}
