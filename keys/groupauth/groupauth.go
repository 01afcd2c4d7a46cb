package groupauth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ExtensionType is the private-use GroupContext extension
// hearth_group_admin; its data is the 32-byte Ed25519 admin public key.
const ExtensionType = 0xF0A1

const label = "hearth group admin v1"

// ErrForbidden is wrapped when a commit needs an admin signature it does
// not carry (or carries a bad one).
var ErrForbidden = errors.New("groupauth: roster change needs the group admin's signature")

// Change is the roster change of one commit, as device addresses
// user@domain/DEVICE, plus the new admin extension data if the commit
// replaces the GroupContext extensions (nil otherwise).
type Change struct {
	Added, Removed []string
	NewAdminKey    []byte
	ExtChanged     bool
}

// Digest is SHA-256 of the canonical change: sorted added, sorted removed
// (each length-prefixed), then the new admin extension data.
func (c Change) Digest() [32]byte {
	h := sha256.New()
	put := func(list []string) {
		l := slices.Clone(list)
		slices.Sort(l)
		binary.Write(h, binary.BigEndian, uint32(len(l)))
		for _, s := range l {
			binary.Write(h, binary.BigEndian, uint32(len(s)))
			h.Write([]byte(s))
		}
	}
	put(c.Added)
	put(c.Removed)
	changed := byte(0)
	if c.ExtChanged {
		changed = 1
	}
	h.Write([]byte{changed})
	binary.Write(h, binary.BigEndian, uint32(len(c.NewAdminKey)))
	h.Write(c.NewAdminKey)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Message is what the admin key signs for a commit of conv at epoch.
func Message(conv string, epoch uint64, c Change) []byte {
	d := c.Digest()
	b := append([]byte(label), 0)
	b = append(b, conv...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	return append(b, d[:]...)
}

// Sign signs the change with the admin private key; the result goes into
// the commit's authenticated_data.
func Sign(admin ed25519.PrivateKey, conv string, epoch uint64, c Change) []byte {
	return ed25519.Sign(admin, Message(conv, epoch, c))
}

// Roster is the group before the commit: its member devices, the
// committer and which devices may be removed without an admin (devices
// revoked from their user's signed list).
type Roster struct {
	Members   []string
	Committer string // device address
	Revoked   func(device string) bool
}

func userOf(device string) string {
	u, _, _ := strings.Cut(device, "/")
	return u
}

// NeedsAdmin reports whether the change needs an admin signature: it adds
// a user who has no device in the group, removes a device of another user
// that was not revoked, or changes the GroupContext extensions.
func NeedsAdmin(r Roster, c Change) bool {
	if c.ExtChanged {
		return true
	}
	users := map[string]bool{}
	for _, m := range r.Members {
		users[userOf(m)] = true
	}
	for _, a := range c.Added {
		if !users[userOf(a)] {
			return true
		}
	}
	me := userOf(r.Committer)
	for _, d := range c.Removed {
		if userOf(d) != me && (r.Revoked == nil || !r.Revoked(d)) {
			return true
		}
	}
	return false
}

// Check applies the rule: adminKey is the current admin public key of the
// group (nil: the group has none, e.g. a 1:1, where a third user may never
// be added); ad is the commit's authenticated_data.
func Check(adminKey []byte, conv string, epoch uint64, r Roster, c Change, ad []byte) error {
	if !NeedsAdmin(r, c) {
		return nil
	}
	if len(adminKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: the group has no admin key", ErrForbidden)
	}
	if len(ad) != ed25519.SignatureSize || !ed25519.Verify(adminKey, Message(conv, epoch, c), ad) {
		return fmt.Errorf("%w: missing or invalid signature", ErrForbidden)
	}
	return nil
}
