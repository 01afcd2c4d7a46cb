package identity

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAddress is wrapped by every address parsing error.
var ErrAddress = errors.New("identity: invalid address")

// Length limits of address parts, in bytes.
const (
	MaxLocalLen    = 64
	MaxDomainLen   = 253
	MaxDeviceIDLen = 64
)

// UserAddress is a canonical user address "local@domain": lowercase.
type UserAddress struct {
	Local  string
	Domain string
}

// DeviceAddress is a canonical device address "local@domain/DEVICE".
type DeviceAddress struct {
	User   UserAddress
	Device string
}

func (u UserAddress) String() string   { return u.Local + "@" + u.Domain }
func (d DeviceAddress) String() string { return d.User.String() + "/" + d.Device }

// IsZero reports whether u is the zero address.
func (u UserAddress) IsZero() bool { return u == UserAddress{} }

// ParseUser parses a canonical user address. The localpart is 1-64 of
// a-z 0-9 . _ - starting and ending with a letter or digit; the domain is
// lowercase LDH labels separated by dots. Uppercase is refused (use
// NormalizeUser for text a person typed).
func ParseUser(s string) (UserAddress, error) {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return UserAddress{}, fmt.Errorf("%w: %q has no @", ErrAddress, s)
	}
	if err := checkLocal(local); err != nil {
		return UserAddress{}, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	if err := checkDomain(domain); err != nil {
		return UserAddress{}, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	return UserAddress{Local: local, Domain: domain}, nil
}

// NormalizeUser trims spaces and lowercases a typed address, then parses it.
func NormalizeUser(s string) (UserAddress, error) {
	return ParseUser(strings.ToLower(strings.TrimSpace(s)))
}

// NormalizeUserIn is NormalizeUser for text that may name a user of home
// by the local part alone ("alice" for alice@home).
func NormalizeUserIn(s, home string) (UserAddress, error) {
	if !strings.Contains(s, "@") {
		s += "@" + home
	}
	return NormalizeUser(s)
}

// ParseDevice parses a canonical device address "user@domain/DEVICE".
func ParseDevice(s string) (DeviceAddress, error) {
	user, dev, ok := strings.Cut(s, "/")
	if !ok {
		return DeviceAddress{}, fmt.Errorf("%w: %q has no /DEVICE", ErrAddress, s)
	}
	u, err := ParseUser(user)
	if err != nil {
		return DeviceAddress{}, err
	}
	if err := CheckDeviceID(dev); err != nil {
		return DeviceAddress{}, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	return DeviceAddress{User: u, Device: dev}, nil
}

// CheckDeviceID validates a device id: 1-64 of A-Z a-z 0-9 _ -. Device ids
// are compared exactly (case-sensitive).
func CheckDeviceID(id string) error {
	if len(id) == 0 || len(id) > MaxDeviceIDLen {
		return fmt.Errorf("device id length %d not in 1..%d", len(id), MaxDeviceIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '-' {
			return fmt.Errorf("device id has invalid character %q", c)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func checkLocal(s string) error {
	if len(s) == 0 || len(s) > MaxLocalLen {
		return fmt.Errorf("localpart length %d not in 1..%d", len(s), MaxLocalLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLowerAlnum(c) {
			continue
		}
		if c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("localpart has invalid character %q", c)
		}
		if i == 0 || i == len(s)-1 {
			return fmt.Errorf("localpart must start and end with a letter or digit")
		}
	}
	return nil
}

func checkDomain(s string) error {
	if len(s) == 0 || len(s) > MaxDomainLen {
		return fmt.Errorf("domain length %d not in 1..%d", len(s), MaxDomainLen)
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("domain label %q length not in 1..63", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if isLowerAlnum(c) {
				continue
			}
			if c != '-' {
				return fmt.Errorf("domain has invalid character %q", c)
			}
			if i == 0 || i == len(label)-1 {
				return fmt.Errorf("domain label %q starts or ends with -", label)
			}
		}
	}
	return nil
}

// CheckDomain validates a canonical (lowercase) domain name, as used for
// homeservers and in addresses.
func CheckDomain(s string) error { return checkDomain(s) }
