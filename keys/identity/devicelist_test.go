package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"hearth/keys/mls/codec"
)

func testList(t testing.TB) (*DeviceList, *Signer) {
	k, err := NewRecoveryKey(&detRand{})
	if err != nil {
		t.Fatal(err)
	}
	return &DeviceList{
		User:     UserAddress{"alice", "a.example"},
		Version:  3,
		IssuedMs: 1_700_000_000_000,
		Devices: []Device{
			{DeviceID: "PHONE", SignatureKey: bytes.Repeat([]byte{2}, 32), Name: "Alice's phone 📱", AddedMs: 1_600_000_000_000},
			{DeviceID: "LAPTOP", SignatureKey: bytes.Repeat([]byte{1}, 32), Name: "laptop", AddedMs: 1_650_000_000_000},
		},
	}, k.Signer()
}

func TestDeviceListSignVerify(t *testing.T) {
	l, s := testList(t)
	list, sig, err := l.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyDeviceList(s.Public(), list, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != l.User || got.Version != 3 || got.IssuedMs != l.IssuedMs || len(got.Devices) != 2 {
		t.Fatalf("decoded %+v", got)
	}
	if got.Devices[0].DeviceID != "LAPTOP" { // canonical order
		t.Fatalf("devices not sorted: %+v", got.Devices)
	}
	d, ok := got.Lookup("PHONE")
	if !ok || d.Name != "Alice's phone 📱" || d.AddedMs != 1_600_000_000_000 || !bytes.Equal(d.SignatureKey, l.Devices[0].SignatureKey) {
		t.Fatalf("Lookup(PHONE) = %+v %v", d, ok)
	}
	if _, ok := got.Lookup("phone"); ok {
		t.Fatal("device ids are case-sensitive")
	}
	if again, _ := got.Marshal(); !bytes.Equal(again, list) {
		t.Fatal("decoded list re-encodes differently")
	}

	other, _ := NewRecoveryKey(&detRand{ctr: 77})
	tampered := bytes.Clone(list)
	tampered[len(tampered)-1] ^= 1
	for name, err := range map[string]error{
		"tampered list": second(VerifyDeviceList(s.Public(), tampered, sig)),
		"tampered sig":  second(VerifyDeviceList(s.Public(), list, flip(sig))),
		"wrong key":     second(VerifyDeviceList(other.Signer().Public(), list, sig)),
		"other label":   second(VerifyDeviceList(s.Public(), list, s.SignLabeled("something else", list))),
	} {
		if !errors.Is(err, ErrSignature) {
			t.Errorf("%s: got %v, want ErrSignature", name, err)
		}
	}
}

func TestDeviceListInvalid(t *testing.T) {
	_, s := testList(t)
	for name, mutate := range map[string]func(l *DeviceList){
		"duplicate device": func(l *DeviceList) { l.Devices[1].DeviceID = "PHONE" },
		"bad device id":    func(l *DeviceList) { l.Devices[0].DeviceID = "a/b" },
		"empty key":        func(l *DeviceList) { l.Devices[0].SignatureKey = nil },
		"bad user":         func(l *DeviceList) { l.User.Local = "Alice" },
		"long name":        func(l *DeviceList) { l.Devices[0].Name = string(make([]byte, 129)) },
		"invalid utf8":     func(l *DeviceList) { l.Devices[0].Name = "\xff" },
	} {
		l, _ := testList(t)
		mutate(l)
		if _, _, err := l.Sign(s); !errors.Is(err, ErrDeviceList) {
			t.Errorf("%s: signed (%v)", name, err)
		}
	}
	// Non-canonical encodings are refused even when correctly signed.
	l, _ := testList(t)
	list, _ := l.Marshal()
	swapped := encodeUnsorted(t, l)
	if bytes.Equal(swapped, list) {
		t.Fatal("test helper did not reorder")
	}
	_, err := VerifyDeviceList(s.Public(), swapped, s.SignLabeled(DeviceListLabel, swapped))
	if !errors.Is(err, ErrDeviceList) || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("unsorted list: got %v, want an out-of-order error", err)
	}
	if _, err := UnmarshalDeviceList(append(bytes.Clone(list), 0)); !errors.Is(err, ErrDeviceList) {
		t.Fatal("trailing byte accepted")
	}
	if _, err := UnmarshalDeviceList(list[:len(list)-1]); !errors.Is(err, ErrDeviceList) {
		t.Fatal("truncated list accepted")
	}
}

// encodeUnsorted writes l in the canonical layout but with its devices in
// the order given (PHONE before LAPTOP), which is not canonical.
func encodeUnsorted(t *testing.T, l *DeviceList) []byte {
	t.Helper()
	w := codec.NewWriter(nil)
	w.Uint8(deviceListFormat)
	w.Opaque([]byte(l.User.String()))
	w.Uint64(l.Version)
	w.Uint64(uint64(l.IssuedMs))
	w.Vector(func(w *codec.Writer) {
		for _, d := range l.Devices {
			w.Opaque([]byte(d.DeviceID))
			w.Opaque(d.SignatureKey)
			w.Opaque([]byte(d.Name))
			w.Uint64(uint64(d.AddedMs))
		}
	})
	return w.Bytes()
}

func TestCheckSuccessor(t *testing.T) {
	a, _ := testList(t)
	b, _ := testList(t)
	b.Version = 4
	if err := CheckSuccessor(a, b); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(l *DeviceList){
		"same version":  func(l *DeviceList) { l.Version = 3 },
		"older version": func(l *DeviceList) { l.Version = 2 },
		"other user":    func(l *DeviceList) { l.User.Local = "bob" },
	} {
		c, _ := testList(t)
		c.Version = 4
		mutate(c)
		if err := CheckSuccessor(a, c); !errors.Is(err, ErrSuccessor) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidator(t *testing.T) {
	l, s := testList(t)
	list, sig, _ := l.Sign(s)
	v := NewValidator()
	laptopKey := bytes.Repeat([]byte{1}, 32)
	if err := v.ValidateMember([]byte("alice@a.example/LAPTOP"), laptopKey); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("before Add: %v", err)
	}
	if _, err := v.Add(s.Public(), list, sig); err != nil {
		t.Fatal(err)
	}
	if err := v.ValidateMember([]byte("alice@a.example/LAPTOP"), laptopKey); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		id, key []byte
		want    error
	}{
		"wrong key":        {[]byte("alice@a.example/LAPTOP"), bytes.Repeat([]byte{2}, 32), ErrKeyMismatch},
		"wrong device":     {[]byte("alice@a.example/TABLET"), laptopKey, ErrUnknownDevice},
		"case of device":   {[]byte("alice@a.example/laptop"), laptopKey, ErrUnknownDevice},
		"other user":       {[]byte("bob@a.example/LAPTOP"), laptopKey, ErrUnknownUser},
		"not canonical":    {[]byte("Alice@a.example/LAPTOP"), laptopKey, ErrCredential},
		"no device":        {[]byte("alice@a.example"), laptopKey, ErrCredential},
		"trailing garbage": {[]byte("alice@a.example/LAPTOP\x00"), laptopKey, ErrCredential},
	} {
		if err := v.ValidateMember(c.id, c.key); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	// Re-adding the same list is fine; a rollback or a forged list is not.
	if _, err := v.Add(s.Public(), list, sig); err != nil {
		t.Fatalf("re-add: %v", err)
	}
	old := *l
	old.Version = 2
	oldList, oldSig, _ := old.Sign(s)
	if _, err := v.Add(s.Public(), oldList, oldSig); !errors.Is(err, ErrSuccessor) {
		t.Fatalf("rollback accepted: %v", err)
	}
	other, _ := NewRecoveryKey(&detRand{ctr: 9})
	forged := *l
	forged.Version = 9
	forged.Devices = append(forged.Devices, Device{DeviceID: "EVIL", SignatureKey: []byte{9}})
	fList, fSig, _ := forged.Sign(other.Signer())
	if _, err := v.Add(s.Public(), fList, fSig); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged list accepted: %v", err)
	}
	// A server substituting the identity key itself is caught by the pin.
	if _, err := v.Add(other.Signer().Public(), fList, fSig); !errors.Is(err, ErrIdentityChanged) {
		t.Fatalf("list under a substituted identity key accepted: %v", err)
	}
	if k, ok := v.IdentityKey(l.User); !ok || !k.Equal(s.Public()) {
		t.Fatal("pinned key changed")
	}
	defer func() {
		// After the user confirms a reset, Forget lets the new key in.
		v.Forget(l.User)
		if _, err := v.Add(other.Signer().Public(), fList, fSig); err != nil {
			t.Fatalf("after Forget: %v", err)
		}
	}()
	if err := v.ValidateMember([]byte("alice@a.example/EVIL"), []byte{9}); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("forged device validated: %v", err)
	}
	// A newer list removing the laptop revokes it.
	next := *l
	next.Version = 4
	next.Devices = l.Devices[:1]
	nList, nSig, _ := next.Sign(s)
	if _, err := v.Add(s.Public(), nList, nSig); err != nil {
		t.Fatal(err)
	}
	if err := v.ValidateMember([]byte("alice@a.example/LAPTOP"), laptopKey); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("removed device still valid: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 1
	return c
}

func FuzzUnmarshalDeviceList(f *testing.F) {
	l, _ := testList(f)
	list, _ := l.Marshal()
	f.Add(list)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnmarshalDeviceList(data)
		if err != nil {
			return
		}
		again, err := got.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted list is not canonical: %v", err)
		}
	})
}

func TestWithAndWithoutDevice(t *testing.T) {
	l, _ := testList(t)
	added, err := l.WithDevice(Device{DeviceID: "TABLET", SignatureKey: []byte{3}, Name: "tablet", AddedMs: 5}, 99)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSuccessor(l, added); err != nil || added.IssuedMs != 99 || len(added.Devices) != 3 || len(l.Devices) != 2 {
		t.Fatalf("WithDevice: %v %+v", err, added)
	}
	if _, err := added.WithDevice(Device{DeviceID: "TABLET", SignatureKey: []byte{4}}, 100); !errors.Is(err, ErrDeviceList) {
		t.Fatal("duplicate device added")
	}
	if _, err := added.WithDevice(Device{DeviceID: "BAD/ID", SignatureKey: []byte{4}}, 100); !errors.Is(err, ErrDeviceList) {
		t.Fatal("invalid device added")
	}
	removed, err := added.WithoutDevice("PHONE", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSuccessor(added, removed); err != nil || len(removed.Devices) != 2 {
		t.Fatalf("WithoutDevice: %v", err)
	}
	if _, ok := removed.Lookup("PHONE"); ok {
		t.Fatal("removed device still listed")
	}
	if _, ok := added.Lookup("PHONE"); !ok {
		t.Fatal("WithoutDevice changed its receiver")
	}
	if _, err := removed.WithoutDevice("PHONE", 101); !errors.Is(err, ErrDeviceList) {
		t.Fatal("removing an absent device succeeded")
	}
}
