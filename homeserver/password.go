package homeserver

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Password hashes are PHC strings: $argon2id$v=19$m=M,t=T,p=P$SALT$HASH
// (unpadded standard base64), so parameters can change without breaking
// stored hashes.

const (
	minPasswordLen = 8
	maxPasswordLen = 1024
	saltLen        = 16
	hashLen        = 32
)

var errBadHash = errors.New("homeserver: malformed password hash")

func checkPassword(pw []byte) error {
	if len(pw) < minPasswordLen || len(pw) > maxPasswordLen {
		return fmt.Errorf("password must be %d..%d bytes", minPasswordLen, maxPasswordLen)
	}
	return nil
}

// hashGate lets at most n argon2id computations run at once. Each one
// allocates its whole memory cost (19 MiB by default), so without a bound
// a burst of logins would grow the heap by that much per login in flight;
// with it, the extra memory of a login storm is n × the cost, and the
// other logins wait their turn (reading from their streams stops
// meanwhile: backpressure).
type hashGate struct {
	sem  chan struct{}
	busy atomic.Int32 // computations running now
	peak atomic.Int32 // most ever running at once
}

func newHashGate(n int) *hashGate {
	return &hashGate{sem: make(chan struct{}, max(n, 1))}
}

func (g *hashGate) idKey(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
	g.sem <- struct{}{}
	defer func() { <-g.sem }()
	b := g.busy.Add(1)
	defer g.busy.Add(-1)
	for {
		pk := g.peak.Load()
		if b <= pk || g.peak.CompareAndSwap(pk, b) {
			break
		}
	}
	return argon2.IDKey(pw, salt, t, m, p, n)
}

// hashPassword derives a new argon2id hash with fresh salt.
func (s *authority) hashPassword(pw []byte) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(s.rand, salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	p := s.cfg.Password
	sum := s.hashes.idKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, hashLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// verifyPassword compares pw with a stored hash in constant time.
func (s *authority) verifyPassword(encoded string, pw []byte) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || t == 0 || p == 0 || m < 8 || m > 1<<22 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := s.hashes.idKey(pw, salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
