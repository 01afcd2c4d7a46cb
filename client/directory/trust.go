package directory

import (
	"context"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// Presented asks the server for user's signed device list and returns the
// identity key it is signed with, checked against that key but not against
// the pin: the key Trust would accept.
func (d *Directory) Presented(ctx context.Context, user identity.UserAddress) (identity.PublicKey, *wire.DeviceListResult, error) {
	const op = "client.FetchDeviceList"
	r, err := d.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user.String()}}})
	if err != nil {
		return identity.PublicKey{}, nil, err
	}
	res := r.GetDeviceList()
	key, err := identity.ParsePublicKey(res.GetIdentityKey())
	if err != nil {
		return identity.PublicKey{}, nil, wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	l, err := identity.VerifyDeviceList(key, res.GetDeviceList().GetList(), res.GetDeviceList().GetSignature())
	if err != nil {
		return identity.PublicKey{}, nil, wire.E(op, wire.Code_CODE_BAD_SIGNATURE, err)
	}
	if l.User != user {
		return identity.PublicKey{}, nil, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "list for %v returned for %v", l.User, user)
	}
	return key, res, nil
}

// PinnedKey returns user's pinned identity key, loading the pin from the
// store; false if this device never pinned one.
func (d *Directory) PinnedKey(user identity.UserAddress) (identity.PublicKey, bool, error) {
	err := d.cfg.Store.View(func(tx *store.Tx) error { return d.pinned(tx, user) })
	if err != nil {
		return identity.PublicKey{}, false, err
	}
	k, ok := d.val.IdentityKey(user)
	return k, ok, nil
}

// Trust pins the identity key user's server presents now in place of the
// pinned one, after the person compared safety numbers. want, if not zero,
// is the key they compared: a server presenting another one is refused.
func (d *Directory) Trust(ctx context.Context, user identity.UserAddress, want identity.PublicKey) (identity.PublicKey, error) {
	const op = "client.Trust"
	key, res, err := d.Presented(ctx, user)
	if err != nil {
		return key, err
	}
	if !want.IsZero() && !key.Equal(want) {
		return key, wire.Errorf(op, wire.Code_CODE_CONFLICT, "%v's identity key changed again since the safety number was shown; compare the new one", user)
	}
	err = d.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.DeleteMeta(pinName(user)); err != nil {
			return err
		}
		d.val.Forget(user)
		_, err := d.pin(tx, user, res)
		return err
	})
	if err == nil {
		d.cfg.Changed()
	}
	return key, err
}
