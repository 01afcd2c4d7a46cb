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

// checkGroupAuth is the hub's half of docs/decisions/0003: a GROUP
// conversation's commit that adds a new user, removes another user's
// device that is still active, or changes the GroupContext extensions
// must carry the group admin's signature in its authenticated_data,
// checked against the admin key of the GroupInfo the hub keeps. The
// creator's first commit (epoch 0, no GroupInfo yet, alone in the group)
// needs none; a conversation whose GroupInfo carries no admin key has no
// roles. It refuses with CODE_FORBIDDEN.
func (h *Hub) checkGroupAuth(op string, tx *storage.Tx, c *storage.Conversation, in *Input, roster []string) error {
	if c.Kind != int(wire.ConversationKind_CONVERSATION_KIND_GROUP) {
		return nil
	}
	if len(c.GroupInfo) == 0 {
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
	env, err := mls.Inspect(m.Payload)
	if err != nil || env.WireFormat != mls.WirePublicMessage || env.ContentType != mls.ContentCommit {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit must be an MLS PublicMessage carrying a Commit")
	}
	if !sameSet(env.Added, m.AddDevices) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "add_devices does not match the devices the commit adds")
	}
	ch := groupauth.Change{Added: m.AddDevices, Removed: m.RemoveDevices, ExtChanged: env.HasExtensions}
	if env.HasExtensions {
		ch.NewAdminKey, _ = env.Extensions.Find(groupauth.ExtensionType)
	}
	revoked := func(addr string) bool {
		da, err := identity.ParseDevice(addr)
		if err != nil || da.Domain() != h.cfg.Domain {
			return false
		}
		// Only a device this server knows as no longer active counts;
		// anything else needs the admin (stricter than clients, never laxer).
		d, err := tx.Device(da.Device)
		return err == nil && d.UserName == da.User.Local && d.Status != storage.DeviceActive
	}
	r := groupauth.Roster{Members: roster, Committer: in.Sender.String(), Revoked: revoked}
	if err := groupauth.Check(adminKey, c.ID, m.Epoch, r, ch, env.AuthenticatedData); err != nil {
		return wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "not an admin of %s: %v", c.ID, err)
	}
	// The GroupInfo the hub keeps next must carry the admin key in force
	// after this commit, or the rule could be dropped by a later commit.
	want := adminKey
	if env.HasExtensions {
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
