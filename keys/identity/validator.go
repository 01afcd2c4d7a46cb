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
)

// Validator checks MLS members against verified device lists. It is safe
// for concurrent use.
type Validator struct {
	mu    sync.RWMutex
	lists map[UserAddress]*DeviceList
}

// NewValidator returns a Validator with no lists.
func NewValidator() *Validator { return &Validator{lists: map[UserAddress]*DeviceList{}} }

// Add verifies a signed device list with the user's identity key and
// keeps it. A list for a user already known must be a successor of the
// kept one (CheckSuccessor); re-adding the same version with the same
// bytes is a no-op, anything else is refused.
func (v *Validator) Add(identity PublicKey, list, sig []byte) (*DeviceList, error) {
	l, err := VerifyDeviceList(identity, list, sig)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if prev, ok := v.lists[l.User]; ok {
		if prev.Version == l.Version {
			if enc, _ := prev.Marshal(); bytes.Equal(enc, list) {
				return prev, nil
			}
		}
		if err := CheckSuccessor(prev, l); err != nil {
			return nil, err
		}
	}
	v.lists[l.User] = l
	return l, nil
}

// List returns the kept list for user, if any.
func (v *Validator) List(user UserAddress) (*DeviceList, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	l, ok := v.lists[user]
	return l, ok
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
