package hub

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

// The hub's public MLS state (docs/groups.md, "The hub verifies every
// commit"). Every conversation created with the creator's epoch-0
// GroupInfo has a row in conv_public_state holding an mls.PublicGroup.
// A commit is accepted only if PublicGroup.Apply verifies it against
// that state; the roster change is the one Apply derives from the commit,
// and the new state is stored in the transaction that accepts the commit.

// listValidator is the hub's mls.CredentialValidator: a device is valid
// when it is on its user's current signed list, with that signature key,
// as this server holds the list: a local user's from device_lists, a
// remote user's from fed_remote_lists (fetched before the writer
// transaction: Hub.ListsToFetch). It does no network I/O.
type listValidator struct {
	tx      *storage.Tx
	domain  string
	lists   map[identity.UserAddress]*identity.DeviceList
	fetched map[string]bool // remote users whose lists were fetched just now
	missing []string        // remote users whose (current) list this server may not hold
	err     error           // a storage failure (not a refusal)
}

func (h *Hub) validator(tx *storage.Tx, in *Input) *listValidator {
	v := &listValidator{tx: tx, domain: h.cfg.Domain, lists: map[identity.UserAddress]*identity.DeviceList{}}
	if in != nil {
		v.fetched = in.Fetched
	}
	return v
}

// stale records that a remote user's list may be missing or old here:
// unless it was fetched for this Send, the refusal is CODE_UNAVAILABLE
// and the list is fetched again for the retry.
func (v *listValidator) stale(u identity.UserAddress) {
	if u.Domain != v.domain && !v.fetched[u.String()] && !slices.Contains(v.missing, u.String()) {
		v.missing = append(v.missing, u.String())
	}
}

func (v *listValidator) opts() mls.PublicOptions { return mls.PublicOptions{Validator: v} }

func (v *listValidator) list(u identity.UserAddress) (*identity.DeviceList, error) {
	if l, ok := v.lists[u]; ok {
		return l, nil
	}
	var idKey, list, sig []byte
	if u.Domain == v.domain {
		usr, err := v.tx.UserByName(u.Local)
		if err == nil {
			idKey, err = v.tx.IdentityKey(usr.ID)
		}
		var sl *storage.SignedList
		if err == nil {
			sl, err = v.tx.DeviceList(usr.ID)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %v has no signed device list", mls.ErrCredential, u)
		} else if err != nil {
			v.err = err
			return nil, err
		}
		list, sig = sl.List, sl.Signature
	} else {
		r, err := v.tx.RemoteList(u.String())
		if errors.Is(err, storage.ErrNotFound) || (err == nil && len(r.List) == 0) {
			v.stale(u)
			return nil, fmt.Errorf("%w: no device list of %v on this server", mls.ErrCredential, u)
		} else if err != nil {
			v.err = err
			return nil, err
		}
		idKey, list, sig = r.IdentityKey, r.List, r.Signature
	}
	pk, err := identity.ParsePublicKey(idKey)
	if err != nil {
		return nil, fmt.Errorf("%w: identity key of %v: %v", mls.ErrCredential, u, err)
	}
	l, err := identity.VerifyDeviceList(pk, list, sig)
	if err != nil {
		return nil, fmt.Errorf("%w: device list of %v: %v", mls.ErrCredential, u, err)
	}
	if l.User != u {
		return nil, fmt.Errorf("%w: the device list of %v names %v", mls.ErrCredential, u, l.User)
	}
	v.lists[u] = l
	return l, nil
}

// listed looks addr up on its user's current signed list as this server
// holds and verifies it (list): the one place that decides whether a
// device is listed, for commit verification (ValidateMember) and for the
// group admin rule (checkGroupAuth's revoked). An error means the list
// is missing (a remote one is marked stale) or does not verify.
func (v *listValidator) listed(addr identity.DeviceAddress) (identity.Device, *identity.DeviceList, bool, error) {
	l, err := v.list(addr.User)
	if err != nil {
		return identity.Device{}, nil, false, err
	}
	d, ok := l.Lookup(addr.Device)
	return d, l, ok, nil
}

// ValidateMember accepts a credential whose identity is a device on its
// user's signed list with exactly that signature key.
func (v *listValidator) ValidateMember(id, signatureKey []byte) error {
	addr, err := identity.ParseDevice(string(id))
	if err != nil {
		return fmt.Errorf("%w: credential %q is not a device address", mls.ErrCredential, id)
	}
	d, l, ok, err := v.listed(addr)
	if err != nil {
		return err
	}
	if !ok {
		v.stale(addr.User)
		return fmt.Errorf("%w: %v is not on its user's signed list (version %d)", mls.ErrCredential, addr, l.Version)
	}
	if !bytes.Equal(d.SignatureKey, signatureKey) {
		v.stale(addr.User)
		return fmt.Errorf("%w: %v signs with another key than its list names (version %d)", mls.ErrCredential, addr, l.Version)
	}
	return nil
}

// refusal turns an mls error of Apply/AddProposal/NewPublicGroup into the
// hub's answer: a storage failure as is; a remote list this server does
// not hold yet CODE_UNAVAILABLE (retryable: its fetch is started); a
// message of another epoch CODE_STALE_EPOCH; anything else
// CODE_BAD_REQUEST.
func (h *Hub) refusal(op, what string, v *listValidator, err error) error {
	if v.err != nil {
		return v.err
	}
	if len(v.missing) > 0 {
		if h.cfg.FetchLists != nil {
			h.cfg.FetchLists(slices.Clone(v.missing))
		}
		return wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "the device list of %s is not on this server yet; retry", v.missing[0])
	}
	if errors.Is(err, mls.ErrEpoch) {
		return wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "%s is not for the conversation's epoch: %v", what, err)
	}
	return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s does not verify against the conversation's MLS state: %v", what, err)
}

// loadState returns the conversation's public state; nil if it has none.
func loadState(tx *storage.Tx, convID string) (*mls.PublicGroup, error) {
	_, b, err := tx.PublicState(convID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	pg, err := mls.UnmarshalPublicGroup(b)
	if err != nil {
		return nil, fmt.Errorf("hub: stored public state of %s: %w", convID, err)
	}
	return pg, nil
}

func storeState(tx *storage.Tx, convID string, pg *mls.PublicGroup) error {
	return tx.PutPublicState(convID, pg.Epoch(), pg.Marshal())
}

// startState builds a new conversation's public state from its creator's
// epoch-0 GroupInfo: the group id is the conversation id, the epoch 0,
// and the creating device the only member, on its user's signed list.
func (h *Hub) startState(op string, tx *storage.Tx, convID, creator string, groupInfo []byte) error {
	v := h.validator(tx, nil)
	pg, err := mls.NewPublicGroup(groupInfo, nil, v.opts())
	if err != nil {
		return h.refusal(op, "the group info", v, err)
	}
	ms := pg.Members()
	switch {
	case string(pg.GroupID()) != convID:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the group info is of group %q, not %s", pg.GroupID(), convID)
	case pg.Epoch() != 0:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the group info is of epoch %d, not 0", pg.Epoch())
	case len(ms) != 1 || string(ms[0].Identity) != creator:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the group info must have the creating device %s as its only member", creator)
	}
	return storeState(tx, convID, pg)
}

// verified is a commit verified against the public state.
type verified struct {
	next             *mls.PublicGroup
	change           *mls.CommitChange
	adds, removes    []string // the roster change, derived from the commit
	external, resync bool
}

// verifyCommit applies the commit to the public state pg (nothing is
// stored) and checks who sent it against what it does:
//   - a member's commit must be signed by the sending device's leaf;
//   - an external commit must be the sending device's, which either joins
//     (not on the roster, a device of its user is) or resyncs (on the
//     roster: the commit removes its old leaf and adds its new one, the
//     roster is unchanged);
//   - add_devices/remove_devices, if sent, must equal the derived change
//     (an external commit may declare add_devices = [itself] alone).
func (h *Hub) verifyCommit(op string, tx *storage.Tx, pg *mls.PublicGroup, in *Input, member bool, roster []string) (*verified, error) {
	m := in.Send
	sender := in.Sender.String()
	if !member {
		env, err := mls.Inspect(m.Payload)
		if err != nil || !env.ExternalJoin {
			return nil, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
		}
	}
	v := h.validator(tx, in)
	next, ch, err := pg.Apply(m.Payload, v.opts())
	if err != nil {
		return nil, h.refusal(op, "the commit", v, err)
	}
	d := &verified{next: next, change: ch, external: ch.External}
	if committer := string(ch.Committer.Identity); committer != sender {
		if !member && !ch.External {
			return nil, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
		}
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the commit is signed by %s, not by the sending device %s", committer, sender)
	}
	added := ids(ch.Added)
	removed := ids(ch.Removed)
	for _, a := range added {
		if !slices.Contains(removed, a) {
			d.adds = append(d.adds, a)
		}
	}
	for _, r := range removed {
		if !slices.Contains(added, r) {
			d.removes = append(d.removes, r)
		}
	}
	switch {
	case ch.External && member:
		d.resync = slices.Contains(removed, sender)
		if !d.resync || len(d.adds)+len(d.removes) > 0 {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "an external commit by a member must replace its own leaf and nothing else")
		}
	case ch.External:
		if !UserOnRoster(roster, in.Sender.User) {
			return nil, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
		}
		if len(d.removes) > 0 || len(d.adds) != 1 || d.adds[0] != sender {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "an external commit may only add its sender")
		}
	case !member:
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
	}
	if len(m.AddDevices)+len(m.RemoveDevices) > 0 {
		declaredSelf := ch.External && len(m.RemoveDevices) == 0 && len(m.AddDevices) == 1 && m.AddDevices[0] == sender
		if !declaredSelf && (!sameStrings(m.AddDevices, d.adds) || !sameStrings(m.RemoveDevices, d.removes)) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST,
				"add_devices %v / remove_devices %v do not match the commit, which adds %v and removes %v",
				m.AddDevices, m.RemoveDevices, d.adds, d.removes)
		}
	}
	// Every commit carries the GroupInfo of its epoch (Hearth clients
	// always send one): the hub then always holds a GroupInfo that
	// matches its state, from which a member that cannot process a commit
	// (say, one whose encrypted path secrets are garbage, which the hub
	// cannot check without the members' keys) rejoins (decision 0006).
	if len(m.GroupInfo) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit must carry the GroupInfo of the epoch it starts")
	}
	if err := next.VerifyGroupInfo(m.GroupInfo); err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the group info does not describe the commit's epoch: %v", err)
	}
	return d, nil
}

// acceptProposal verifies a proposal against the public state and caches
// it there for commits of this epoch that include it by reference.
func (h *Hub) acceptProposal(op string, tx *storage.Tx, pg *mls.PublicGroup, in *Input) (*mls.PublicGroup, error) {
	v := h.validator(tx, in)
	next, info, err := pg.AddProposal(in.Send.Payload, v.opts())
	if err != nil {
		return nil, h.refusal(op, "the proposal", v, err)
	}
	leaf, ok := pg.LeafOf([]byte(in.Sender.String()))
	if info.Sender.Type != mls.SenderMember || !ok || uint32(leaf) != info.Sender.Index {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the proposal is not signed by the sending device %s", in.Sender)
	}
	return next, nil
}

func ids(ms []mls.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, string(m.Identity))
	}
	return out
}

// sameStrings reports whether a and b hold the same strings, as sets.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// ListsToFetch names the remote users whose signed device lists a Send
// needs verified and this server does not hold, or holds without the
// device: the users of the devices a commit adds by value and of its
// sender; and the users of other users' remote devices the commit
// removes that the list held here still names (checkGroupAuth counts a
// device no longer listed as revoked; the committer may know a newer list
// than this server). The caller fetches them
// (federation) before it submits the Send to the writer, so that the
// writer's transaction does no network I/O. Proposals by reference are
// not looked into: their lists were needed when they were proposed.
func (h *Hub) ListsToFetch(tx *storage.Tx, in *Input) ([]string, error) {
	m := in.Send
	if m.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT && m.Kind != wire.MessageKind_MESSAGE_KIND_PROPOSAL {
		return nil, nil
	}
	env, err := mls.Inspect(m.Payload)
	if err != nil {
		return nil, nil // refused in the writer
	}
	devs := []identity.DeviceAddress{in.Sender}
	for _, a := range env.Added {
		if d, err := identity.ParseDevice(string(a)); err == nil {
			devs = append(devs, d)
		}
	}
	removed, err := h.removedRemote(tx, in, env)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, d := range append(devs, removed...) {
		u := d.User.String()
		if d.Domain() == h.cfg.Domain || slices.Contains(out, u) {
			continue
		}
		r, err := tx.RemoteList(u)
		if errors.Is(err, storage.ErrNotFound) {
			out = append(out, u)
			continue
		} else if err != nil {
			return nil, err
		}
		l, err := identity.UnmarshalDeviceList(r.List)
		if err != nil {
			out = append(out, u)
			continue
		}
		// An added device or the sender must be listed; a removed one
		// must not be, or the list here may be old.
		if _, ok := l.Lookup(d.Device); ok == (i >= len(devs)) {
			out = append(out, u)
		}
	}
	return out, nil
}

// removedRemote is the devices of other servers, of users other than the
// sender's, that a commit removes by value: as it declares them
// (remove_devices, which the writer checks against the commit), else read
// from the conversation's public state.
func (h *Hub) removedRemote(tx *storage.Tx, in *Input, env *mls.Envelope) ([]identity.DeviceAddress, error) {
	m := in.Send
	if m.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT || len(env.Removed) == 0 {
		return nil, nil
	}
	addrs := m.RemoveDevices
	if len(addrs) == 0 {
		pg, err := loadState(tx, m.ConversationId)
		if err != nil || pg == nil {
			return nil, err
		}
		for _, mb := range pg.Members() {
			if slices.Contains(env.Removed, mb.Leaf) {
				addrs = append(addrs, string(mb.Identity))
			}
		}
	}
	var out []identity.DeviceAddress
	for _, a := range addrs {
		if d, err := identity.ParseDevice(a); err == nil && d.Domain() != h.cfg.Domain && d.User != in.Sender.User {
			out = append(out, d)
		}
	}
	return out, nil
}
