package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"hearth/client/convstate"
	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Group control messages travel as MLS application messages whose body
// carries "ctl" instead of "text" (docs/groups.md). Everything but a
// leave request must be signed with the group admin key in effect when
// the message is processed; unsigned or badly signed ones are ignored.

const (
	ctlMeta  = "meta"  // name, description, admins, sealed admin keys
	ctlLeave = "leave" // the sender's user leaves; an admin commits the removal
)

// adminKeyLabel is the HPKE label of an admin key sealed to a member's leaf key.
const adminKeyLabel = "hearth group admin key"

// control is one group control message.
type control struct {
	Type        string            `json:"type"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Admins      []string          `json:"admins,omitempty"`
	Keys        map[string][]byte `json:"keys,omitempty"` // device -> admin key seed sealed to its leaf
	// Epoch is the MLS epoch the description was signed in (signed with
	// it): a member holding a description of a later epoch ignores an
	// older one replayed to it (any member may forward a signed one).
	Epoch uint64 `json:"epoch,omitempty"`
	Sig   []byte `json:"sig,omitempty"`
	// Op and Arg (in the outbox only) say what the message changes; the
	// full state it carries is taken when it is encrypted, so concurrent
	// changes by several admins compose in conversation order.
	Op  string `json:"op,omitempty"`
	Arg string `json:"arg,omitempty"`
}

func controlMessage(conv string, ctl control) ([]byte, error) {
	ctl.Sig, ctl.Op, ctl.Arg = nil, "", ""
	b, err := json.Marshal(ctl)
	if err != nil {
		return nil, err
	}
	return append(append([]byte("hearth group control v1\x00"), conv...), append([]byte{0}, b...)...), nil
}

func (ctl *control) sign(conv string, seed []byte) error {
	msg, err := controlMessage(conv, *ctl)
	if err != nil {
		return err
	}
	ctl.Sig = ed25519.Sign(ed25519.NewKeyFromSeed(seed), msg)
	return nil
}

func (ctl *control) verify(conv string, adminPub []byte) bool {
	if len(adminPub) != ed25519.PublicKeySize || len(ctl.Sig) != ed25519.SignatureSize {
		return false
	}
	msg, err := controlMessage(conv, *ctl)
	return err == nil && ed25519.Verify(adminPub, msg, ctl.Sig)
}

// groupMeta is what this device knows of a group besides its MLS state.
type groupMeta struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Admins      []string `json:"admins"`
	AdminSeed   []byte   `json:"admin_seed,omitempty"` // held only by admins' devices
	Leaving     []string `json:"leaving,omitempty"`    // users who asked to leave
	// Signed is the last admin-signed meta control message this device
	// sent or accepted, as it was sent: a member that adds devices to the
	// group (a user's new device) forwards it so that they learn the
	// group's name and admins (forwardMeta).
	Signed json.RawMessage `json:"signed,omitempty"`
	// SignedEpoch is the epoch Signed was signed in.
	SignedEpoch uint64 `json:"signed_epoch,omitempty"`
}

func gmetaName(conv string) string { return "gmeta/" + conv }

func getGroupMeta(tx *store.Tx, conv string) (groupMeta, bool, error) {
	var m groupMeta
	raw := tx.Meta(gmetaName(conv))
	if raw == nil {
		return m, false, nil
	}
	err := json.Unmarshal(raw, &m)
	return m, true, err
}

func putGroupMeta(tx *store.Tx, conv string, m groupMeta) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.PutMeta(gmetaName(conv), raw)
}

// sealControl completes an outbox control message at encryption time: the
// group's current state with the change applied, the admin key sealed to
// every device of every admin user, then the signature. This device's own
// view is updated at once (it does not process its own messages).
func (gp *Groups) sealControl(tx *store.Tx, conv string, g e2ee.Group, self e2ee.Self, raw []byte) ([]byte, error) {
	var ctl control
	if err := json.Unmarshal(raw, &ctl); err != nil {
		return nil, fmt.Errorf("client: stored control message: %w", err)
	}
	if ctl.Type == ctlLeave {
		return json.Marshal(control{Type: ctlLeave})
	}
	meta, _, err := getGroupMeta(tx, conv)
	if err != nil {
		return nil, err
	}
	if ctl.Op == opForward {
		if meta.Signed == nil {
			return nil, fmt.Errorf("client: no signed group description of %s to forward", conv)
		}
		return meta.Signed, nil
	}
	if meta.AdminSeed == nil {
		return nil, notAdmin(conv)
	}
	out := control{Type: ctlMeta, Name: meta.Name, Description: meta.Description, Admins: slices.Clone(meta.Admins), Epoch: g.Epoch()}
	switch ctl.Op {
	case "rename":
		out.Name = ctl.Arg
	case "describe":
		out.Description = ctl.Arg
	case "promote":
		if !slices.Contains(out.Admins, ctl.Arg) {
			out.Admins = append(out.Admins, ctl.Arg)
		}
	case "demote":
		out.Admins = slices.DeleteFunc(out.Admins, func(a string) bool { return a == ctl.Arg })
	}
	users := convstate.UsersOf(g.Members())
	out.Admins = slices.DeleteFunc(out.Admins, func(a string) bool { return !slices.Contains(users, a) })
	slices.Sort(out.Admins)
	for _, m := range g.Members() {
		if m == self.Address || !slices.Contains(out.Admins, convstate.UserOf(m)) {
			continue
		}
		sealed, err := g.SealTo(m, adminKeyLabel, []byte(conv), meta.AdminSeed)
		if err != nil {
			return nil, err
		}
		if out.Keys == nil {
			out.Keys = map[string][]byte{}
		}
		out.Keys[m] = sealed
	}
	if err := out.sign(conv, meta.AdminSeed); err != nil {
		return nil, err
	}
	signed, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	meta.Name, meta.Description, meta.Admins, meta.Signed, meta.SignedEpoch = out.Name, out.Description, out.Admins, signed, out.Epoch
	if err := putGroupMeta(tx, conv, meta); err != nil {
		return nil, err
	}
	return signed, nil
}

// opForward marks an outbox control message that forwards the group's
// last signed description unchanged (any member may send it).
const opForward = "forward"

// forwardMeta queues the group's last signed description for conv, after
// this device's commit added devices to it: a device added because its
// user's device list grew gets no description from an admin otherwise.
// Members that have it already see no change.
func (gp *Groups) forwardMeta(tx *store.Tx, conv string) error {
	meta, isGroup, err := getGroupMeta(tx, conv)
	if err != nil || !isGroup || meta.Signed == nil {
		return err
	}
	raw, err := json.Marshal(control{Type: ctlMeta, Op: opForward})
	if err != nil {
		return err
	}
	id, err := gp.newID()
	if err != nil {
		return err
	}
	_, err = tx.AddOutbox(store.OutboxItem{ID: id, To: conv, Conversation: conv, Control: raw, Created: gp.now().UTC()})
	return err
}

// applyControl applies a received control message in conversation order
// and returns the events it produced.
func (r *receiver) applyControl(tx *store.Tx, conv string, g e2ee.Group, self e2ee.Self, sender string, ctl control) ([]store.Message, error) {
	meta, isGroup, err := getGroupMeta(tx, conv)
	if err != nil || !isGroup {
		return nil, err
	}
	switch ctl.Type {
	case ctlLeave:
		u := convstate.UserOf(sender)
		if u == convstate.UserOf(self.Address) {
			return []store.Message{{Event: "left", User: u}}, forgetConversation(tx, conv)
		}
		if !slices.Contains(meta.Leaving, u) {
			meta.Leaving = append(meta.Leaving, u)
		}
		if err := markLeavers(tx, conv, true); err != nil {
			return nil, err
		}
		return []store.Message{{Event: "leaving", User: u}}, putGroupMeta(tx, conv, meta)
	case ctlMeta:
	default:
		return nil, nil
	}
	if !ctl.verify(conv, g.AdminKey()) {
		r.log.Warn("ignoring group control message not signed by the admin key", "conversation", conv, "sender", sender)
		return nil, nil
	}
	first := meta.Name == "" && len(meta.Admins) == 0
	if !first && ctl.Epoch < meta.SignedEpoch {
		r.log.Warn("ignoring a group description older than the one held (replayed)", "conversation", conv, "sender", sender,
			"epoch", ctl.Epoch, "held", meta.SignedEpoch)
		return nil, nil
	}
	var evs []store.Message
	if first {
		// The first description of the group this device sees: the group
		// was just created (its first epoch), or this device was added.
		if g.Epoch() <= 1 {
			evs = append(evs, store.Message{Event: "created", User: convstate.UserOf(sender), Text: ctl.Name})
		} else {
			evs = append(evs, store.Message{Event: "joined", User: convstate.UserOf(self.Address), Text: ctl.Name})
		}
		meta.Name, meta.Admins = ctl.Name, slices.Clone(ctl.Admins)
	}
	if ctl.Name != meta.Name {
		evs = append(evs, store.Message{Event: "renamed", Text: ctl.Name})
	}
	for _, a := range ctl.Admins {
		if !slices.Contains(meta.Admins, a) {
			evs = append(evs, store.Message{Event: "promoted", User: a})
		}
	}
	for _, a := range meta.Admins {
		if !slices.Contains(ctl.Admins, a) {
			evs = append(evs, store.Message{Event: "demoted", User: a})
		}
	}
	meta.Name, meta.Description, meta.Admins = ctl.Name, ctl.Description, slices.Clone(ctl.Admins)
	if ok, err := adoptSettingsGroup(tx, conv, ctl.Name, g.Members(), convstate.UserOf(self.Address)); err != nil {
		return nil, err
	} else if ok {
		evs = nil // the settings group is no conversation to show
	}
	if signed, err := json.Marshal(ctl); err == nil {
		meta.Signed, meta.SignedEpoch = signed, ctl.Epoch
	}
	if sealed, ok := ctl.Keys[self.Address]; ok {
		seed, err := g.OpenSealed(adminKeyLabel, []byte(conv), sealed)
		if err == nil && len(seed) == ed25519.SeedSize && string(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)) == string(g.AdminKey()) {
			meta.AdminSeed = seed
		} else {
			r.log.Warn("an admin key sealed to this device does not open or does not match the group", "conversation", conv)
		}
	} else if !slices.Contains(meta.Admins, convstate.UserOf(self.Address)) {
		meta.AdminSeed = nil
	}
	return evs, putGroupMeta(tx, conv, meta)
}

// forgetConversation drops this device's state of a conversation it left.
func forgetConversation(tx *store.Tx, conv string) error {
	if err := convstate.Forget(tx, conv); err != nil {
		return err
	}
	for _, name := range []string{gmetaName(conv), convstate.CommitName(conv)} {
		if err := tx.DeleteMeta(name); err != nil {
			return err
		}
	}
	if err := tx.DeleteGroup(conv); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return tx.PutMeta(goneName(conv), []byte{1})
}

// goneName marks a conversation this device was removed from or left.
func goneName(conv string) string { return "gone/" + conv }

func notMemberAnymore(conv string) error {
	return wire.Errorf("client.Group", wire.Code_CODE_NOT_MEMBER, "you are no longer a member of group %s (not a member: removed, or left)", conv)
}

// adminSyncDue reports whether this device, seeing added join conv,
// should send a meta message: it holds the admin key and one of added
// (not this device) is a device of an admin user. An admin's new device
// gets the admin key only sealed in a meta message, so without one it
// could not act as admin until an admin's next group change.
func adminSyncDue(meta groupMeta, added []string, self string) bool {
	if meta.AdminSeed == nil {
		return false
	}
	return slices.ContainsFunc(added, func(d string) bool {
		return d != self && slices.Contains(meta.Admins, convstate.UserOf(d))
	})
}

// queueAdminSync queues a meta "sync" control message for conv (sent by
// the next flush: every send and recv) unless one is queued already.
func queueAdminSync(tx *store.Tx, conv, id string, now time.Time) error {
	items, err := tx.Outbox()
	if err != nil {
		return err
	}
	for _, it := range items {
		var ctl control
		if it.Conversation == conv && it.Failed == "" && it.Control != nil &&
			json.Unmarshal(it.Control, &ctl) == nil && ctl.Type == ctlMeta && ctl.Op == "sync" {
			return nil
		}
	}
	raw, err := json.Marshal(control{Type: ctlMeta, Op: "sync"})
	if err != nil {
		return err
	}
	_, err = tx.AddOutbox(store.OutboxItem{ID: id, To: conv, Conversation: conv, Control: raw, Created: now.UTC()})
	return err
}

// shareAdminKey sends a meta message to conv when device, just added to
// it by this device, is a device of an admin user and this device holds
// the admin key (adminSyncDue).
func (gp *Groups) shareAdminKey(ctx context.Context, conv, device string) error {
	self, err := gp.acct.Self()
	if err != nil {
		return err
	}
	var due bool
	gp.st.View(func(tx *store.Tx) error {
		meta, _, err := getGroupMeta(tx, conv)
		due = err == nil && adminSyncDue(meta, []string{device}, self.Address)
		return nil
	})
	if !due {
		return nil
	}
	return gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: "sync"})
}
