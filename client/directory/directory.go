package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// CallFunc sends one request over the device's session.
type CallFunc func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)

// Config is what a Directory needs.
type Config struct {
	Store *store.Store // the pins
	// Call waits for a connection and sends a request cut off by a lost
	// one again; CallNow fails at once without a connection (inside a
	// store transaction, possibly on the session's delivery goroutine).
	Call, CallNow CallFunc
	// Changed is told when a verified list is new or has another version
	// than the pinned one: rosters may need its devices added or removed.
	Changed func()
	// Home is the domain of this device's server ("" before login): the
	// domains of others whose servers it cannot reach are not asked for
	// again for a while (unreachable.go).
	Home func() string
	Now  func() time.Time // time.Now when nil
}

// Directory is this device's view of the key directory: pinned identity
// keys and verified device lists.
type Directory struct {
	cfg     Config
	val     *identity.Validator
	unreach unreachable
}

// New returns a Directory with nothing pinned in memory yet (pins are
// loaded from the store on first use).
func New(cfg Config) *Directory {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Directory{cfg: cfg, val: identity.NewValidator()}
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

// pinned loads user's pin from the store into the validator the first
// time the user is looked at.
func (d *Directory) pinned(tx *store.Tx, user identity.UserAddress) error {
	if _, ok := d.val.List(user); ok {
		return nil
	}
	return loadPins(tx, d.val, []string{user.String()})
}

// Fetch asks the server for user's signed list, verifies it with
// the pinned identity key (pinning it on first sight) and stores the pin in
// tx (or in a transaction of its own when tx is nil). A list older than the
// pinned one is refused and the pinned one kept.
func (d *Directory) Fetch(ctx context.Context, tx *store.Tx, user identity.UserAddress) (*identity.DeviceList, error) {
	const op = "client.FetchDeviceList"
	call := d.cfg.Call
	if tx != nil {
		// Inside a store transaction (possibly on the session's delivery
		// goroutine, which must return for the session to reconnect):
		// no waiting for a new connection.
		call = d.cfg.CallNow
	}
	if err := d.isUnreachable(ctx, tx, user); err != nil {
		return nil, err
	}
	r, err := call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user.String()}}})
	if err != nil {
		d.noteUnreachable(tx, user, wire.KindOf(err))
		return nil, err
	}
	res := r.GetDeviceList()
	var list *identity.DeviceList
	update := func(tx *store.Tx) error {
		l, err := d.pin(tx, user, res)
		list = l
		return err
	}
	if tx != nil {
		err = update(tx)
	} else {
		err = d.cfg.Store.Update(update)
	}
	return list, err
}

// MemberValidator checks MLS members against pinned device lists, fetching
// a user's list when a member is not on the list it has. A fetch that fails
// for a local or network reason is kept in Transient, so that the caller
// retries the message later instead of rejecting it.
type MemberValidator struct {
	d         *Directory
	ctx       context.Context
	tx        *store.Tx
	Transient error
	// CommitAt, when set, is when the hub accepted the commit being
	// processed. A device the commit adds that is missing from its user's
	// list is then accepted if that list was signed after CommitAt: the
	// user's list has moved on since the commit, so the device may have
	// been listed then and revoked since (decision 0006). Such devices are
	// kept in Revoked; they are never encrypted to (the roster reconcile
	// removes them first) and never shown as senders (Listed).
	CommitAt int64 // Unix ms; 0: strict
	Revoked  []string
}

// ValidateMember accepts a member on its user's validly signed list,
// fetching the list once when the member is not on the pinned one.
func (v *MemberValidator) ValidateMember(id, sigKey []byte) error {
	err := v.d.val.ValidateMember(id, sigKey)
	if err == nil || !(errors.Is(err, identity.ErrUnknownUser) || errors.Is(err, identity.ErrUnknownDevice) || errors.Is(err, identity.ErrKeyMismatch)) {
		return err
	}
	addr, perr := identity.ParseDevice(string(id))
	if perr != nil {
		return err
	}
	l, ferr := v.d.Fetch(v.ctx, v.tx, addr.User)
	if ferr != nil {
		if !wire.Is(ferr, wire.Code_CODE_BAD_SIGNATURE) && !wire.Is(ferr, wire.Code_CODE_NOT_FOUND) {
			v.Transient = ferr
		}
		return fmt.Errorf("%w (refreshing the list failed: %v)", err, ferr)
	}
	err = v.d.val.ValidateMember(id, sigKey)
	if errors.Is(err, identity.ErrUnknownDevice) && v.CommitAt > 0 && l.IssuedMs > v.CommitAt {
		v.Revoked = append(v.Revoked, addr.String())
		return nil
	}
	return err
}

// Listed reports whether device (user@domain/DEVICE) is on its user's
// list, fetching the list once when it is not on the pinned one. A fetch
// that fails for a local or network reason is returned as an error.
func (d *Directory) Listed(ctx context.Context, tx *store.Tx, device string) (bool, error) {
	return d.ListedAt(ctx, tx, device, 0)
}

// ListedAt is Listed for a message the hub accepted at atMs (Unix ms): a
// device missing from its user's current list also counts as listed when
// that list was signed after atMs, since the device may have been on the
// list when it sent and been revoked since (the rule of
// MemberValidator.CommitAt, decision 0006). atMs 0: strict.
func (d *Directory) ListedAt(ctx context.Context, tx *store.Tx, device string, atMs int64) (bool, error) {
	addr, err := identity.ParseDevice(device)
	if err != nil {
		return false, nil
	}
	if err := d.pinned(tx, addr.User); err != nil {
		return false, err
	}
	if l, ok := d.val.List(addr.User); ok {
		if _, ok := l.Lookup(addr.Device); ok {
			return true, nil
		}
	}
	l, err := d.Fetch(ctx, tx, addr.User)
	if err != nil {
		if wire.Is(err, wire.Code_CODE_BAD_SIGNATURE) || wire.Is(err, wire.Code_CODE_NOT_FOUND) {
			return false, nil
		}
		return false, err
	}
	_, ok := l.Lookup(addr.Device)
	return ok || (atMs > 0 && l.IssuedMs > atMs), nil
}

// Members returns a MemberValidator that fetches in tx (nil: in
// transactions of its own).
func (d *Directory) Members(ctx context.Context, tx *store.Tx) *MemberValidator {
	return &MemberValidator{d: d, ctx: ctx, tx: tx}
}

// PinnedValidator checks members against the lists this device holds and
// fetches nothing: for reading a group (Members, Epoch).
type PinnedValidator struct{ *identity.Validator }

// PrefetchMembers does nothing: nothing is fetched.
func (PinnedValidator) PrefetchMembers([][]byte) {}

// Pinned returns a PinnedValidator.
func (d *Directory) Pinned() PinnedValidator { return PinnedValidator{d.val} }

// IdentityKey returns user's pinned identity key, if any.
func (d *Directory) IdentityKey(user identity.UserAddress) (identity.PublicKey, bool) {
	return d.val.IdentityKey(user)
}
