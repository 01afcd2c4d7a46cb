package identity

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// Errors from Validator.
var (
	ErrCredential    = errors.New("identity: credential identity is not a device address")
	ErrUnknownUser   = errors.New("identity: no verified device list for user")
	ErrUnknownDevice = errors.New("identity: device is not on its user's device list")
	ErrKeyMismatch   = errors.New("identity: signature key differs from the device list's")
	// ErrIdentityChanged means a list came signed by a different identity
	// key than the one first seen for the user. Only the user (out of band)
	// can confirm such a change; then call Forget.
	ErrIdentityChanged = errors.New("identity: user's identity key changed")
)

// Validator checks MLS members against verified device lists. It is safe
// for concurrent use.
type Validator struct {
	mu    sync.RWMutex
	users map[UserAddress]pinned
}

// pinned is a user's identity key (trusted on first use) and newest list.
type pinned struct {
	key  PublicKey
	list *DeviceList
}

// NewValidator returns a Validator with no lists.
func NewValidator() *Validator { return &Validator{users: map[UserAddress]pinned{}} }

// Add verifies a signed device list with the user's identity key and
// keeps it. The first identity key seen for a user is pinned: a list
// signed by another key is refused with ErrIdentityChanged. A list for a
// user already known must be a successor of the kept one
// (CheckSuccessor); re-adding the same bytes is a no-op.
func (v *Validator) Add(identity PublicKey, list, sig []byte) (*DeviceList, error) {
	l, err := VerifyDeviceList(identity, list, sig)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if prev, ok := v.users[l.User]; ok {
		if !prev.key.Equal(identity) {
			return nil, fmt.Errorf("%w: %v now signs with %v, pinned %v", ErrIdentityChanged, l.User, identity, prev.key)
		}
		if prev.list.Version == l.Version {
			if enc, _ := prev.list.Marshal(); bytes.Equal(enc, list) {
				return prev.list, nil
			}
		}
		if err := CheckSuccessor(prev.list, l); err != nil {
			return nil, err
		}
	}
	v.users[l.User] = pinned{key: identity, list: l}
	return l, nil
}

// Forget drops a user's pinned identity key and list, after the user's
// new identity key was confirmed out of band.
func (v *Validator) Forget(user UserAddress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.users, user)
}

// IdentityKey returns the pinned identity key of user.
func (v *Validator) IdentityKey(user UserAddress) (PublicKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p, ok := v.users[user]
	return p.key, ok
}

// List returns the kept list for user, if any.
func (v *Validator) List(user UserAddress) (*DeviceList, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p, ok := v.users[user]
	return p.list, ok
}

// ValidateMember checks an MLS member: identity is its BasicCredential
// identity (the UTF-8 canonical device address) and signatureKey its leaf
// signature public key. The device must be on its user's verified list
// with exactly that key.
func (v *Validator) ValidateMember(identity, signatureKey []byte) error {
	addr, err := ParseDevice(string(identity))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCredential, err)
	}
	l, ok := v.List(addr.User)
	if !ok {
		return fmt.Errorf("%w: %v", ErrUnknownUser, addr.User)
	}
	d, ok := l.Lookup(addr.Device)
	if !ok {
		return fmt.Errorf("%w: %v (list version %d)", ErrUnknownDevice, addr, l.Version)
	}
	if !bytes.Equal(d.SignatureKey, signatureKey) {
		return fmt.Errorf("%w: %v (list version %d)", ErrKeyMismatch, addr, l.Version)
	}
	return nil
}

// CredentialIdentity returns the BasicCredential identity bytes for a
// device.
func CredentialIdentity(d DeviceAddress) []byte { return []byte(d.String()) }
