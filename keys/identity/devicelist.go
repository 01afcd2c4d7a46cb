package identity

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"hearth/keys/mls/codec"
)

// DeviceListLabel separates device list signatures from every other use
// of the identity key.
const DeviceListLabel = "hearth device list v1"

// Limits on a device list.
const (
	MaxDevices         = 256
	MaxDeviceNameLen   = 128 // bytes of UTF-8
	MaxSignatureKeyLen = 256
	deviceListFormat   = 1
)

// Errors about device lists.
var (
	ErrDeviceList = errors.New("identity: invalid device list")
	ErrSuccessor  = errors.New("identity: device list is not a successor")
)

// Device is one entry of a DeviceList.
type Device struct {
	DeviceID     string
	SignatureKey []byte // the device's MLS signature public key
	Name         string
	AddedMs      int64
}

// DeviceList is a user's signed list of devices. Version only grows.
type DeviceList struct {
	User     UserAddress
	Version  uint64
	IssuedMs int64
	Devices  []Device
}

// Lookup returns the device with id.
func (l *DeviceList) Lookup(deviceID string) (Device, bool) {
	for _, d := range l.Devices {
		if d.DeviceID == deviceID {
			return d, true
		}
	}
	return Device{}, false
}

// Validate checks the list as Sign would encode it: a canonical user,
// valid and unique device ids, sizes within limits. Devices may be in any
// order; Marshal sorts them.
func (l *DeviceList) Validate() error {
	if _, err := ParseUser(l.User.String()); err != nil {
		return fmt.Errorf("%w: %v", ErrDeviceList, err)
	}
	if len(l.Devices) > MaxDevices {
		return fmt.Errorf("%w: %d devices, limit %d", ErrDeviceList, len(l.Devices), MaxDevices)
	}
	seen := map[string]bool{}
	for _, d := range l.Devices {
		if err := checkDevice(d); err != nil {
			return fmt.Errorf("%w: %v", ErrDeviceList, err)
		}
		if seen[d.DeviceID] {
			return fmt.Errorf("%w: device %q listed twice", ErrDeviceList, d.DeviceID)
		}
		seen[d.DeviceID] = true
	}
	return nil
}

func checkDevice(d Device) error {
	if err := CheckDeviceID(d.DeviceID); err != nil {
		return err
	}
	if len(d.SignatureKey) == 0 || len(d.SignatureKey) > MaxSignatureKeyLen {
		return fmt.Errorf("device %q signature key is %d bytes", d.DeviceID, len(d.SignatureKey))
	}
	if len(d.Name) > MaxDeviceNameLen || !utf8.ValidString(d.Name) {
		return fmt.Errorf("device %q name is not UTF-8 of at most %d bytes", d.DeviceID, MaxDeviceNameLen)
	}
	return nil
}

// Marshal returns the canonical encoding (devices sorted by id):
//
//	uint8 format = 1; opaque user<V>; uint64 version; uint64 issued_ms;
//	Device devices<V>;  where Device is
//	opaque device_id<V>; opaque signature_key<V>; opaque name<V>; uint64 added_ms;
func (l *DeviceList) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	devs := slices.Clone(l.Devices)
	slices.SortFunc(devs, func(a, b Device) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	w := codec.NewWriter(nil)
	w.Uint8(deviceListFormat)
	w.Opaque([]byte(l.User.String()))
	w.Uint64(l.Version)
	w.Uint64(uint64(l.IssuedMs))
	w.Vector(func(w *codec.Writer) {
		for _, d := range devs {
			w.Opaque([]byte(d.DeviceID))
			w.Opaque(d.SignatureKey)
			w.Opaque([]byte(d.Name))
			w.Uint64(uint64(d.AddedMs))
		}
	})
	return w.Bytes(), nil
}

// UnmarshalDeviceList decodes the canonical encoding. It accepts only
// canonical input (devices strictly ascending by id, valid fields), so a
// list has exactly one encoding. It does not verify any signature; use
// VerifyDeviceList for bytes from the network.
func UnmarshalDeviceList(b []byte) (*DeviceList, error) {
	r := codec.NewReader(b)
	if f := r.Uint8(); r.Err() == nil && f != deviceListFormat {
		return nil, fmt.Errorf("%w: format %d", ErrDeviceList, f)
	}
	user := string(r.Opaque())
	l := &DeviceList{Version: r.Uint64(), IssuedMs: int64(r.Uint64())}
	r.Vector(func(r *codec.Reader) {
		d := Device{DeviceID: string(r.Opaque()), SignatureKey: slices.Clone(r.Opaque()),
			Name: string(r.Opaque()), AddedMs: int64(r.Uint64())}
		if r.Err() != nil {
			return
		}
		if n := len(l.Devices); n > 0 && l.Devices[n-1].DeviceID >= d.DeviceID {
			r.Fail(fmt.Errorf("device %q out of order or repeated", d.DeviceID))
			return
		}
		if len(l.Devices) == MaxDevices {
			r.Fail(fmt.Errorf("more than %d devices", MaxDevices))
			return
		}
		if err := checkDevice(d); err != nil {
			r.Fail(err)
			return
		}
		l.Devices = append(l.Devices, d)
	})
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDeviceList, err)
	}
	u, err := ParseUser(user)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDeviceList, err)
	}
	l.User = u
	return l, nil
}

// Sign encodes l canonically and signs the encoding with the identity
// key. The returned bytes are wire.SignedDeviceList.list and .signature.
func (l *DeviceList) Sign(s *Signer) (list, sig []byte, err error) {
	list, err = l.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return list, s.SignLabeled(DeviceListLabel, list), nil
}

// VerifyDeviceList checks sig over the exact list bytes with the user's
// identity key, then decodes them. It never re-serializes.
func VerifyDeviceList(identity PublicKey, list, sig []byte) (*DeviceList, error) {
	if err := identity.VerifyLabeled(DeviceListLabel, list, sig); err != nil {
		return nil, fmt.Errorf("identity: device list: %w", err)
	}
	return UnmarshalDeviceList(list)
}

// CheckSuccessor reports whether next may replace prev: same user and a
// strictly greater version.
func CheckSuccessor(prev, next *DeviceList) error {
	if prev.User != next.User {
		return fmt.Errorf("%w: user %v, previous list is for %v", ErrSuccessor, next.User, prev.User)
	}
	if next.Version <= prev.Version {
		return fmt.Errorf("%w: version %d does not exceed %d", ErrSuccessor, next.Version, prev.Version)
	}
	return nil
}

// WithDevice returns the successor of l that adds d: version + 1, issued
// at issuedMs. It refuses a device id already listed.
func (l *DeviceList) WithDevice(d Device, issuedMs int64) (*DeviceList, error) {
	if _, ok := l.Lookup(d.DeviceID); ok {
		return nil, fmt.Errorf("%w: device %q already listed", ErrDeviceList, d.DeviceID)
	}
	next := l.successor(issuedMs)
	next.Devices = append(next.Devices, Device{DeviceID: d.DeviceID, SignatureKey: slices.Clone(d.SignatureKey), Name: d.Name, AddedMs: d.AddedMs})
	if err := next.Validate(); err != nil {
		return nil, err
	}
	return next, nil
}

// WithoutDevice returns the successor of l that removes device id (a
// revocation): version + 1, issued at issuedMs.
func (l *DeviceList) WithoutDevice(id string, issuedMs int64) (*DeviceList, error) {
	if _, ok := l.Lookup(id); !ok {
		return nil, fmt.Errorf("%w: device %q not listed", ErrDeviceList, id)
	}
	next := l.successor(issuedMs)
	next.Devices = slices.DeleteFunc(next.Devices, func(d Device) bool { return d.DeviceID == id })
	return next, nil
}

func (l *DeviceList) successor(issuedMs int64) *DeviceList {
	next := &DeviceList{User: l.User, Version: l.Version + 1, IssuedMs: issuedMs}
	for _, d := range l.Devices {
		d.SignatureKey = slices.Clone(d.SignatureKey)
		next.Devices = append(next.Devices, d)
	}
	return next
}
