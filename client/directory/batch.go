package directory

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// maxFetchLists is the most users one FetchDeviceLists may name (the
// server's limit).
const maxFetchLists = 256

// FetchMany fetches, verifies and pins the signed device lists of
// many users in one round trip per 256 users (FetchDeviceLists), with
// exactly the rules of Fetch: the identity key is pinned on
// first sight and must not change, a list older than the pinned one is
// refused and the pinned one kept, a list for another user is refused.
// Pins go into tx (or a transaction of their own when tx is nil). It
// returns the lists it holds afterwards by user; users the server could
// not answer for are left out, and a list that fails verification is an
// error (CODE_BAD_SIGNATURE), as with Fetch. Against a server
// without FetchDeviceLists it fetches the lists one by one.
func (d *Directory) FetchMany(ctx context.Context, tx *store.Tx, users []identity.UserAddress) (map[identity.UserAddress]*identity.DeviceList, error) {
	const op = "client.FetchDeviceLists"
	out := map[identity.UserAddress]*identity.DeviceList{}
	call := d.cfg.Call
	if tx != nil {
		call = d.cfg.CallNow // see Fetch
	}
	// Users of servers found unreachable a moment ago are not asked for:
	// they are left out, as users the server could not answer for.
	users = slices.DeleteFunc(slices.Clone(users), func(u identity.UserAddress) bool { return d.isUnreachable(ctx, tx, u) != nil })
	for chunk := range slices.Chunk(users, maxFetchLists) {
		names := make([]string, len(chunk))
		for i, u := range chunk {
			names[i] = u.String()
		}
		r, err := call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceLists{FetchDeviceLists: &wire.FetchDeviceLists{Users: names}}})
		if wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
			return d.fetchOneByOne(ctx, tx, users)
		}
		if err != nil {
			return nil, err
		}
		asked := map[string]identity.UserAddress{}
		for _, u := range chunk {
			asked[u.String()] = u
		}
		for _, m := range r.GetDeviceLists().GetMissing() {
			if u, ok := asked[m.GetUser()]; ok {
				d.noteUnreachable(tx, u, m.GetCode())
			}
		}
		pin := func(tx *store.Tx) error {
			for _, res := range r.GetDeviceLists().GetLists() {
				user, ok := asked[res.GetUser()]
				if !ok {
					return wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "list for %q, which was not asked for", res.GetUser())
				}
				l, err := d.pin(tx, user, res)
				if err != nil {
					return err
				}
				out[user] = l
			}
			return nil
		}
		if tx != nil {
			err = pin(tx)
		} else {
			err = d.cfg.Store.Update(pin)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchOneByOne is FetchMany for servers without the
// batched request.
func (d *Directory) fetchOneByOne(ctx context.Context, tx *store.Tx, users []identity.UserAddress) (map[identity.UserAddress]*identity.DeviceList, error) {
	out := map[identity.UserAddress]*identity.DeviceList{}
	for _, u := range users {
		l, err := d.Fetch(ctx, tx, u)
		if wire.Is(err, wire.Code_CODE_NOT_FOUND) || (err != nil && session.Retryable(err) && ctx.Err() == nil) {
			continue // left out, as a missing user of the batch
		}
		if err != nil {
			return nil, err
		}
		out[u] = l
	}
	return out, nil
}

// pin verifies one answered list against user's pinned identity
// key (pinning it on first sight) and stores the pin in tx: the rules of
// Fetch, shared so that both paths pin the same way.
func (d *Directory) pin(tx *store.Tx, user identity.UserAddress, res *wire.DeviceListResult) (*identity.DeviceList, error) {
	const op = "client.FetchDeviceList"
	key, err := identity.ParsePublicKey(res.GetIdentityKey())
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	if err := d.pinned(tx, user); err != nil {
		return nil, err
	}
	prev, had := d.val.List(user)
	l, err := d.val.Add(key, res.GetDeviceList().GetList(), res.GetDeviceList().GetSignature())
	if errors.Is(err, identity.ErrSuccessor) {
		if kept, ok := d.val.List(user); ok {
			return kept, nil // the server sent an older list: keep ours
		}
	}
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	if l.User != user {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "list for %v returned for %v", l.User, user)
	}
	if !had || prev == nil || prev.Version != l.Version {
		d.cfg.Changed() // rosters may need this list's devices added or removed
	}
	raw, err := json.Marshal(pin{IdentityKey: key.Bytes(), List: res.GetDeviceList().GetList(), Signature: res.GetDeviceList().GetSignature()})
	if err != nil {
		return nil, err
	}
	return l, tx.PutMeta(pinName(user), raw)
}

// Unknown lists the users of member device addresses whose device
// is not on the list this device holds for them (or who have no list
// here yet): the ones a join or commit check would fetch.
func (d *Directory) Unknown(tx *store.Tx, members []string) []identity.UserAddress {
	var out []identity.UserAddress
	seen := map[identity.UserAddress]bool{}
	for _, m := range members {
		da, err := identity.ParseDevice(m)
		if err != nil || seen[da.User] {
			continue
		}
		if err := d.pinned(tx, da.User); err != nil {
			continue
		}
		if l, ok := d.val.List(da.User); ok && slices.ContainsFunc(l.Devices, func(d identity.Device) bool { return d.DeviceID == da.Device }) {
			continue
		}
		seen[da.User] = true
		out = append(out, da.User)
	}
	return out
}

// PrefetchMembers fetches, in one batch, the lists of the users whose
// devices among identities are not on the lists this device holds. A
// failure that is not a bad signature is kept as transient, like a
// failed single fetch.
func (v *MemberValidator) PrefetchMembers(identities [][]byte) {
	if v.tx == nil || v.Transient != nil {
		return
	}
	members := make([]string, len(identities))
	for i, id := range identities {
		members[i] = string(id)
	}
	users := v.d.Unknown(v.tx, members)
	if len(users) < 2 {
		return // one goes the usual way
	}
	if _, err := v.d.FetchMany(v.ctx, v.tx, users); err != nil && !wire.Is(err, wire.Code_CODE_BAD_SIGNATURE) {
		v.Transient = err
	}
}
