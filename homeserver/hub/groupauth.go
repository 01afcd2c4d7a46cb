package hub

import (
	"bytes"
	"slices"

	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

// commitFacts is what a commit does, as checkGroupAuth needs it: derived
// from the verified commit, or (a conversation without a public state,
// Config.UnverifiedCommits) declared beside it and inspected.
type commitFacts struct {
	Added, Removed    []string // device addresses
	ExtChanged        bool
	Extensions        mls.Extensions
	AuthenticatedData []byte
	inspected         *mls.Envelope // the unverified path's envelope
	verified          bool          // derived from a verified commit
}

// checkGroupAuth is the hub's half of docs/decisions/0003: a GROUP
// conversation's commit that adds a new user, removes another user's
// device that is not revoked, or changes the GroupContext extensions
// must carry the group admin's signature in its authenticated_data,
// checked against the admin key of the GroupInfo the hub keeps. The
// creator's first commit (epoch 0, alone in the group) needs none; a
// conversation whose GroupInfo carries no admin key has no roles. It
// refuses with CODE_FORBIDDEN. The change it judges is the one derived
// from the verified commit (f).
//
// A device is revoked when it is not on its user's signed list as the
// hub verifies it (listValidator.listed), or is a local device this
// server revoked. A commit refused only because it removes a remote
// device that the list held here still names, that list not fetched for
// this Send, is refused with CODE_UNAVAILABLE instead and the list
// fetched: the committer may have seen a newer list, and the retry is
// judged on the fresh one.
func (h *Hub) checkGroupAuth(op string, tx *storage.Tx, c *storage.Conversation, in *Input, roster []string, f *commitFacts) error {
	if c.Kind != int(wire.ConversationKind_CONVERSATION_KIND_GROUP) {
		return nil
	}
	if len(c.GroupInfo) == 0 || (c.Epoch == 0 && len(roster) == 1 && roster[0] == c.Creator) {
		return nil // epoch 0: the creator alone
	}
	gi, err := mls.InspectGroupInfo(c.GroupInfo)
	if err != nil {
		return nil // not a group that carries roles (no readable GroupInfo)
	}
	adminKey, ok := gi.Extensions.Find(groupauth.ExtensionType)
	if !ok {
		return nil // a group without the admin key: no roles
	}
	m := in.Send
	if f.inspected == nil && !f.verified {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit must be an MLS PublicMessage carrying a Commit")
	}
	if f.inspected != nil && !sameSet(f.inspected.Added, m.AddDevices) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "add_devices does not match the devices the commit adds")
	}
	ch := groupauth.Change{Added: f.Added, Removed: f.Removed, ExtChanged: f.ExtChanged}
	if f.ExtChanged {
		ch.NewAdminKey, _ = f.Extensions.Find(groupauth.ExtensionType)
	}
	v := h.validator(tx, in)
	var unsure []string // remote users whose stored list still lists a removed device
	revoked := func(addr string) bool {
		da, err := identity.ParseDevice(addr)
		if err != nil {
			return false
		}
		if da.Domain() == h.cfg.Domain {
			// A local device this server revoked (an admin's revoke, before
			// the user's devices publish the successor list) counts too.
			d, err := tx.Device(da.Device)
			if err == nil && d.UserName == da.User.Local && d.Status != storage.DeviceActive {
				return true
			}
		}
		// Otherwise a device counts as revoked when it is not on its
		// user's current signed list as the hub verifies it (local lists
		// from device_lists, remote ones from fed_remote_lists), as clients
		// decide before they remove it. No list (a remote one is fetched,
		// below) or a listed device needs the admin: never laxer.
		_, _, ok, err := v.listed(da)
		if err != nil {
			return false
		}
		if ok && da.Domain() != h.cfg.Domain && !v.fetched[da.User.String()] && !slices.Contains(unsure, da.User.String()) {
			unsure = append(unsure, da.User.String())
		}
		return !ok
	}
	r := groupauth.Roster{Members: roster, Committer: in.Sender.String(), Revoked: revoked}
	err = groupauth.Check(adminKey, c.ID, m.Epoch, r, ch, f.AuthenticatedData)
	if v.err != nil {
		return v.err
	}
	if err != nil {
		// The committer may know a newer list of a remote user than the
		// hub's copy: if the commit needs the admin only for removals of
		// such users' devices, fetch their lists and judge the retry on
		// the fresh ones.
		stale := append(slices.Clone(v.missing), unsure...)
		maybe := r
		maybe.Revoked = func(addr string) bool {
			da, err := identity.ParseDevice(addr)
			return revoked(addr) || (err == nil && slices.Contains(stale, da.User.String()))
		}
		if len(stale) > 0 && !groupauth.NeedsAdmin(maybe, ch) {
			if h.cfg.FetchLists != nil {
				h.cfg.FetchLists(stale)
			}
			return wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "the device list of %s here may be older than the commit's; retry", stale[0])
		}
		return wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "not an admin of %s: %v", c.ID, err)
	}
	// The GroupInfo the hub keeps next must carry the admin key in force
	// after this commit, or the rule could be dropped by a later commit.
	want := adminKey
	if f.ExtChanged {
		want = ch.NewAdminKey
	}
	next, err := mls.InspectGroupInfo(m.GroupInfo)
	if err != nil {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit of a group with roles must carry a valid GroupInfo: %v", err)
	}
	if got, _ := next.Extensions.Find(groupauth.ExtensionType); !bytes.Equal(got, want) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the commit's GroupInfo does not carry the group admin key")
	}
	return nil
}

// sameSet reports whether the identities equal the addresses, as sets.
func sameSet(ids [][]byte, addrs []string) bool {
	if len(ids) != len(addrs) {
		return false
	}
	for _, id := range ids {
		if !slices.ContainsFunc(addrs, func(a string) bool { return bytes.Equal([]byte(a), id) }) {
			return false
		}
	}
	return true
}
