package identity

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// safetyIterations makes finding a second key with the same half of a
// safety number cost that many hashes per try.
const safetyIterations = 5200

// SafetyNumber is the number two users compare (in person or on a call) to
// check that each holds the other's real identity key: 60 digits in groups
// of five, the same on both sides. Each user's half is 30 digits derived
// from the user's address and identity key by iterated SHA-512; the halves
// are ordered by address.
func SafetyNumber(a UserAddress, ak PublicKey, b UserAddress, bk PublicKey) string {
	x, y := safetyHalf(a, ak), safetyHalf(b, bk)
	if b.String() < a.String() {
		x, y = y, x
	}
	var groups []string
	for _, half := range []string{x, y} {
		for i := 0; i < len(half); i += 5 {
			groups = append(groups, half[i:i+5])
		}
	}
	return strings.Join(groups, " ")
}

// safetyHalf is one user's 30 digits.
func safetyHalf(u UserAddress, k PublicKey) string {
	h := sha512.Sum512(fmt.Appendf(nil, "hearth safety number v1\x00%s\x00%s", u, k.b[:]))
	for range safetyIterations - 1 {
		h = sha512.Sum512(append(h[:], k.b[:]...))
	}
	var b strings.Builder
	for i := 0; i < 30; i += 5 {
		n := binary.BigEndian.Uint64(append([]byte{0, 0, 0}, h[i:i+5]...))
		fmt.Fprintf(&b, "%05d", n%100000)
	}
	return b.String()
}
