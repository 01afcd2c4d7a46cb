package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// pin is a user's identity key as first seen (trust on first use) and the
// newest signed device list verified with it, kept in the store so that a
// later run refuses a changed identity key or an older list.
type pin struct {
	IdentityKey []byte `json:"identity_key"`
	List        []byte `json:"list"`
	Signature   []byte `json:"signature"`
}

func pinName(user identity.UserAddress) string { return "pin/" + user.String() }

// loadPins fills the validator from the store.
func loadPins(tx *store.Tx, v *identity.Validator, users []string) error {
	for _, u := range users {
		ua, err := identity.ParseUser(u)
		if err != nil {
			continue
		}
		raw := tx.Meta(pinName(ua))
		if raw == nil {
			continue
		}
		var p pin
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("client: stored pin for %s: %w", u, err)
		}
		key, err := identity.ParsePublicKey(p.IdentityKey)
		if err != nil {
			return fmt.Errorf("client: stored pin for %s: %w", u, err)
		}
		if _, err := v.Add(key, p.List, p.Signature); err != nil {
			return fmt.Errorf("client: stored pin for %s: %w", u, err)
		}
	}
	return nil
}

// validator returns the pinned validator, loading a user's pin from the
// store the first time the user is looked at.
func (c *Client) pinned(tx *store.Tx, user identity.UserAddress) error {
	if _, ok := c.val.List(user); ok {
		return nil
	}
	return loadPins(tx, c.val, []string{user.String()})
}

// fetchDeviceList asks the server for user's signed list, verifies it with
// the pinned identity key (pinning it on first sight) and stores the pin in
// tx (or in a transaction of its own when tx is nil). A list older than the
// pinned one is refused and the pinned one kept.
func (c *Client) fetchDeviceList(ctx context.Context, tx *store.Tx, user identity.UserAddress) (*identity.DeviceList, error) {
	const op = "client.FetchDeviceList"
	call := c.callIdempotent
	if tx != nil {
		// Inside a store transaction (possibly on the session's delivery
		// goroutine, which must return for the session to reconnect):
		// no waiting for a new connection.
		call = c.callNow
	}
	r, err := call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user.String()}}})
	if err != nil {
		return nil, err
	}
	res := r.GetDeviceList()
	var list *identity.DeviceList
	update := func(tx *store.Tx) error {
		l, err := c.pinDeviceList(tx, user, res)
		list = l
		return err
	}
	if tx != nil {
		err = update(tx)
	} else {
		err = c.st.Update(update)
	}
	return list, err
}

// memberValidator checks MLS members against pinned device lists, fetching
// a user's list when a member is not on the list it has. A fetch that fails
// for a local or network reason is kept in transient, so that the caller
// retries the message later instead of rejecting it.
type memberValidator struct {
	c         *Client
	ctx       context.Context
	tx        *store.Tx
	transient error
}

var _ CredentialValidator = (*memberValidator)(nil)

func (v *memberValidator) ValidateMember(id, sigKey []byte) error {
	err := v.c.val.ValidateMember(id, sigKey)
	if err == nil || !(errors.Is(err, identity.ErrUnknownUser) || errors.Is(err, identity.ErrUnknownDevice) || errors.Is(err, identity.ErrKeyMismatch)) {
		return err
	}
	addr, perr := identity.ParseDevice(string(id))
	if perr != nil {
		return err
	}
	if _, ferr := v.c.fetchDeviceList(v.ctx, v.tx, addr.User); ferr != nil {
		if !wire.Is(ferr, wire.Code_CODE_BAD_SIGNATURE) && !wire.Is(ferr, wire.Code_CODE_NOT_FOUND) {
			v.transient = ferr
		}
		return fmt.Errorf("%w (refreshing the list failed: %v)", err, ferr)
	}
	return v.c.val.ValidateMember(id, sigKey)
}

// pinnedValidator checks members against the lists this device holds and
// fetches nothing: for reading a group (Members, Epoch).
type pinnedValidator struct{ *identity.Validator }

var _ CredentialValidator = pinnedValidator{}

func (pinnedValidator) PrefetchMembers([][]byte) {}

func (c *Client) validator(ctx context.Context, tx *store.Tx) *memberValidator {
	return &memberValidator{c: c, ctx: ctx, tx: tx}
}
