package serverkey

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// PEMType is the PEM block type of a stored key (the 32-byte Ed25519 seed).
const PEMType = "HEARTH SERVER SIGNING KEY"

// Errors of this package.
var (
	ErrKey       = errors.New("serverkey: invalid key")
	ErrSignature = errors.New("serverkey: invalid signature")
	ErrUnknown   = errors.New("serverkey: unknown key id")
	ErrExpired   = errors.New("serverkey: key not valid at that time")
)

// ID names a key: "ed25519:" and 11 base64url characters of SHA-256 of the public key.
type ID string

// IDOf returns the key id of pub.
func IDOf(pub ed25519.PublicKey) ID {
	sum := sha256.Sum256(pub)
	return ID("ed25519:" + base64.RawURLEncoding.EncodeToString(sum[:8]))
}

// Key is a server's private signing key. It formats as "[redacted]".
type Key struct {
	priv ed25519.PrivateKey
	id   ID
}

// Generate makes a new key from rand.
func Generate(rand io.Reader) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("serverkey: generate: %w", err)
	}
	return fromPrivate(priv), nil
}

// FromSeed returns the key whose Ed25519 seed is seed (32 bytes).
func FromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrKey, len(seed), ed25519.SeedSize)
	}
	return fromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

func fromPrivate(priv ed25519.PrivateKey) *Key {
	return &Key{priv: priv, id: IDOf(priv.Public().(ed25519.PublicKey))}
}

// ID returns the key id.
func (k *Key) ID() ID { return k.id }

// Public returns the public key.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Sign signs label || 0x00 || msg. Labels separate every use of the key.
func (k *Key) Sign(label string, msg []byte) []byte {
	return ed25519.Sign(k.priv, labeled(label, msg))
}

// PrivateKey returns the key for APIs that need a crypto.Signer-compatible
// ed25519.PrivateKey (JWT signing). Callers must not store or log it.
func (k *Key) PrivateKey() ed25519.PrivateKey { return k.priv }

// String never reveals the key.
func (k *Key) String() string { return "[redacted]" }

// GoString never reveals the key.
func (k *Key) GoString() string { return "[redacted]" }

// MarshalPEM encodes the key's seed as a PEM block for a 0600 file.
func (k *Key) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMType, Bytes: k.priv.Seed()})
}

// ParsePEM reads a key written by MarshalPEM.
func ParsePEM(b []byte) (*Key, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != PEMType {
		return nil, fmt.Errorf("%w: no %q PEM block", ErrKey, PEMType)
	}
	if len(rest) != 0 && len(pemTrim(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after PEM block", ErrKey)
	}
	return FromSeed(blk.Bytes)
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func labeled(label string, msg []byte) []byte {
	b := make([]byte, 0, len(label)+1+len(msg))
	b = append(b, label...)
	b = append(b, 0)
	return append(b, msg...)
}

// Verify checks sig over label || 0x00 || msg with pub.
func Verify(pub ed25519.PublicKey, label string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes", ErrKey, len(pub))
	}
	if !ed25519.Verify(pub, labeled(label, msg), sig) {
		return ErrSignature
	}
	return nil
}

// PublicKey is a published verification key with its validity window.
type PublicKey struct {
	ID         ID
	Key        ed25519.PublicKey
	ValidFrom  time.Time
	ValidUntil time.Time // zero: no end
	// FreshUntil is on the receiver's clock: until then the key may be
	// used as published; after it the publisher's document must be
	// fetched again (its validity window ended). Zero: no such bound.
	FreshUntil time.Time
}

// ValidAt reports whether the key may have signed something at t.
func (p PublicKey) ValidAt(t time.Time) bool {
	if !p.ValidFrom.IsZero() && t.Before(p.ValidFrom) {
		return false
	}
	return p.ValidUntil.IsZero() || !t.After(p.ValidUntil)
}

// Set is a server's verification keys: the current one and older ones kept
// to check what they signed before rotation.
type Set struct {
	keys map[ID]PublicKey
}

// NewSet returns a set holding keys.
func NewSet(keys ...PublicKey) *Set {
	s := &Set{keys: make(map[ID]PublicKey, len(keys))}
	for _, k := range keys {
		s.keys[k.ID] = k
	}
	return s
}

// Keys returns the keys in the set.
func (s *Set) Keys() []PublicKey {
	out := make([]PublicKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	return out
}

// Fresh reports whether key id may be used at now (receiver's clock)
// without fetching its document again: false for a key the set does not
// hold or whose FreshUntil has passed.
func (s *Set) Fresh(id ID, now time.Time) bool {
	k, ok := s.keys[id]
	return ok && (k.FreshUntil.IsZero() || !now.After(k.FreshUntil))
}

// Verify checks that key id signed label||msg and was valid at t.
func (s *Set) Verify(id ID, t time.Time, label string, msg, sig []byte) error {
	k, ok := s.keys[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknown, id)
	}
	if !k.ValidAt(t) {
		return fmt.Errorf("%w: %s at %s", ErrExpired, id, t.UTC().Format(time.RFC3339))
	}
	if IDOf(k.Key) != id {
		return fmt.Errorf("%w: key id %s does not match its key", ErrKey, id)
	}
	return Verify(k.Key, label, msg, sig)
}

// WriteKeyFile writes a private key file: a temporary file with mode 0600
// in the same folder, synced, then renamed over path, and the folder
// synced, so that path holds either the old or the new key after a crash.
func WriteKeyFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("serverkey: write %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir makes a rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("serverkey: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("serverkey: sync %s: %w", dir, err)
	}
	return nil
}

// ReadFile reads a key written with MarshalPEM; a missing file is
// (nil, nil).
func ReadFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("serverkey: %w", err)
	}
	k, err := ParsePEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
