package store

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Encryption at rest (docs/security.md, "Client secrets at rest"). With a
// passphrase, every record value of the profile is sealed with
// XChaCha20-Poly1305 under a key derived from it with argon2id; the record
// key (its name in the file) is the additional data, so a value cannot be
// moved to another record of the same bucket. Bucket names and record keys
// stay readable: conversation ids, message sequence numbers, outbox message
// ids and queue order, KeyPackage references, the number and size of
// records. Not sealed: the outbox id index and queue index (message id →
// sequence), the mailbox sequence, and the kdf record itself.

// Errors of an encrypted profile.
var (
	ErrLocked       = errors.New("store: the profile is encrypted; give its passphrase (--passphrase-stdin or HEARTH_PASSPHRASE_FILE)")
	ErrPassphrase   = errors.New("store: wrong passphrase for this profile")
	ErrNotEncrypted = errors.New("store: the profile is not encrypted; encrypt it first (hearth chat profile encrypt)")
	ErrEncrypted    = errors.New("store: the profile is already encrypted")
	// ErrKeyringLocked: the profile's key is in the OS keyring and this
	// process cannot read it (no keyring session, or the item is gone).
	ErrKeyringLocked = errors.New("store: the profile is encrypted with a key kept in the OS keyring, which this session cannot reach (log in to the desktop session that holds it, or set DBUS_SESSION_BUS_ADDRESS)")
)

// ErrKeyringRefused: a new profile's key could not be kept in the OS
// keyring, so the profile was not created.
var ErrKeyringRefused = errors.New("store: the OS keyring did not take the new profile's key")

// Keyring keeps profile keys in the OS keyring (client/oskeyring). Get of
// an id that is not there wraps ErrNoKey.
type Keyring interface {
	Get(id string) ([]byte, error)
	Set(id string, key []byte) error
}

// ErrNoKey is a Keyring's answer for an id it does not hold.
var ErrNoKey = errors.New("store: no such key in the keyring")

// keyringKeySize is the size of a random profile key kept in a keyring.
const keyringKeySize = 32

var (
	bCrypt = []byte("crypt")
	kKDF   = []byte("kdf")
	// sealed are the buckets whose values are encrypted (nested buckets
	// included).
	sealed = [][]byte{bAccount, bKeys, bConvs, bTrees, bOutbox, bInbox, bSync}
)

const (
	sealVersion = 1
	// sealOverhead is how much longer a sealed value is than the value.
	sealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	checkText    = "hearth profile key v1"
)

// KDFParams are the argon2id costs of a new profile key. They are stored
// with the profile, so changing them affects only profiles encrypted later.
var KDFParams = kdfRecord{Time: 2, MemoryKiB: 64 << 10, Threads: 2}

// kdfRecord is crypt/kdf: how the key is derived, and a value sealed with
// it that tells a wrong passphrase apart.
type kdfRecord struct {
	Alg       string `json:"alg"` // "argon2id", or "keyring": a random key kept in the OS keyring under KeyID
	KeyID     string `json:"key_id,omitempty"`
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Check     []byte `json:"check"`
}

// newKeyringSealer makes the sealer of a profile whose key is a random
// secret kept in the OS keyring: no slow derivation is needed for a
// uniformly random key, HKDF-SHA256 binds it to the profile's salt.
func newKeyringSealer(secret []byte, r *kdfRecord) (*sealer, error) {
	if len(r.Salt) < 16 || r.KeyID == "" {
		return nil, errors.New("store: unusable keyring key record")
	}
	if len(secret) != keyringKeySize {
		return nil, ErrPassphrase
	}
	key, err := hkdf.Key(sha256.New, secret, r.Salt, "hearth profile key v1", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, kind: "keyring"}, nil
}

// sealer encrypts and decrypts record values.
type sealer struct {
	aead cipher.AEAD
	kind string // "passphrase" or "keyring"
}

func newSealer(pass []byte, r *kdfRecord) (*sealer, error) {
	if r.Alg == "keyring" {
		return newKeyringSealer(pass, r)
	}
	if r.Alg != "argon2id" || len(r.Salt) < 16 || r.Time == 0 || r.MemoryKiB < 8 || r.Threads == 0 || r.MemoryKiB > 4<<20 {
		return nil, fmt.Errorf("store: unusable key derivation record %q", r.Alg)
	}
	key := argon2.IDKey(pass, r.Salt, r.Time, r.MemoryKiB, r.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, kind: "passphrase"}, nil
}

func (s *sealer) seal(k, v []byte) []byte {
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(v)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		panic("store: randomness: " + err.Error())
	}
	return s.aead.Seal(out, out[1:], v, k)
}

func (s *sealer) open(k, v []byte) ([]byte, error) {
	n := chacha20poly1305.NonceSizeX
	if len(v) < 1+n+s.aead.Overhead() || v[0] != sealVersion {
		return nil, fmt.Errorf("store: record %q is not sealed", k)
	}
	p, err := s.aead.Open(nil, v[1:1+n], v[1+n:], k)
	if err != nil {
		return nil, fmt.Errorf("store: record %q does not open with the profile key", k)
	}
	return p, nil
}

// get returns a copy of the value of k in b, opened if the profile is
// encrypted; nil if there is none.
func (t *Tx) get(b *kvBucket, k []byte) ([]byte, error) {
	v := b.Get(k)
	if v == nil {
		return nil, nil
	}
	if t.s == nil {
		return cloneBytes(v), nil
	}
	return t.s.open(k, v)
}

// getShared is get for a reader that copies what it keeps (a record
// decoder): the value of an unencrypted profile is bbolt's own, valid
// only inside the transaction and never to be changed.
func (t *Tx) getShared(b *kvBucket, k []byte) ([]byte, error) {
	if t.s == nil {
		return b.Get(k), nil
	}
	return t.get(b, k)
}

// put stores v under k in b, sealed if the profile is encrypted.
func (t *Tx) put(b *kvBucket, k, v []byte) error {
	if t.s != nil {
		v = t.s.seal(k, v)
	}
	return b.Put(k, v)
}

// unlock reads the kdf record in the transaction that opens the store:
// with it, pass (or, for a keyring record, the key kr holds) must open its
// check value; without it, a passphrase is accepted only for a profile
// that holds no account yet (a new one), which is then encrypted. A new
// profile opened without a passphrase but with a keyring is encrypted
// with a random key kept there.
func unlock(t *Tx, pass []byte, kr Keyring) (*sealer, error) {
	b := t.bucket(bCrypt)
	var rec *kdfRecord
	if raw := b.Get(kKDF); raw != nil {
		rec = &kdfRecord{}
		if err := json.Unmarshal(raw, rec); err != nil {
			return nil, fmt.Errorf("store: corrupt key derivation record: %w", err)
		}
	}
	isNew := t.bucket(bAccount).Get(kAccount) == nil
	switch {
	case rec == nil && len(pass) == 0 && kr != nil && isNew:
		return encryptAllKeyring(t, kr)
	case rec == nil && len(pass) == 0:
		return nil, nil
	case rec == nil:
		if !isNew {
			return nil, ErrNotEncrypted
		}
		return encryptAll(t, pass)
	case rec.Alg == "keyring" && len(pass) == 0:
		if kr == nil {
			return nil, ErrKeyringLocked
		}
		key, err := kr.Get(rec.KeyID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyringLocked, err)
		}
		defer clear(key)
		pass = key
	case len(pass) == 0:
		return nil, ErrLocked
	}
	s, err := newSealer(pass, rec)
	if err != nil {
		return nil, err
	}
	if p, err := s.open([]byte("check"), rec.Check); err != nil || string(p) != checkText {
		return nil, ErrPassphrase
	}
	return s, nil
}

// encryptAllKeyring encrypts the profile with a new random key stored in
// kr first (a key lost between the two leaves only an unused item in the
// keyring; a profile is never sealed under a key the keyring did not take).
func encryptAllKeyring(t *Tx, kr Keyring) (*sealer, error) {
	key := make([]byte, keyringKeySize)
	defer clear(key)
	id := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	rec := kdfRecord{Alg: "keyring", KeyID: hex.EncodeToString(id)}
	if err := kr.Set(rec.KeyID, key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyringRefused, err)
	}
	return sealAll(t, key, rec)
}

// encryptAll makes a key from pass, seals every value of the sealed
// buckets and stores the kdf record, in the caller's transaction.
func encryptAll(t *Tx, pass []byte) (*sealer, error) {
	if len(pass) == 0 {
		return nil, errors.New("store: an empty passphrase encrypts nothing")
	}
	rec := KDFParams
	rec.Alg = "argon2id"
	return sealAll(t, pass, rec)
}

// sealAll gives rec a salt and a check value made with secret, seals every
// value of the sealed buckets and stores rec.
func sealAll(t *Tx, secret []byte, rec kdfRecord) (*sealer, error) {
	rec.Salt = make([]byte, 16)
	if _, err := rand.Read(rec.Salt); err != nil {
		return nil, err
	}
	s, err := newSealer(secret, &rec)
	if err != nil {
		return nil, err
	}
	rec.Check = s.seal([]byte("check"), []byte(checkText))
	for _, name := range sealed {
		if b := t.bucket(name); b != nil {
			if err := sealBucket(s, b); err != nil {
				return nil, fmt.Errorf("store: encrypt %s: %w", name, err)
			}
		}
	}
	raw, err := json.Marshal(&rec)
	if err != nil {
		return nil, err
	}
	if err := t.bucket(bCrypt).Put(kKDF, raw); err != nil {
		return nil, err
	}
	return s, nil
}

// sealBucket seals every value of b and of the buckets nested in it (the
// mailbox sequence, plain, is in a bucket of its own: bMailbox).
func sealBucket(s *sealer, b *kvBucket) error {
	type kv struct{ k, v []byte }
	var vals []kv
	var nested [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if b.Bucket(k) != nil {
			nested = append(nested, cloneBytes(k))
		} else {
			vals = append(vals, kv{cloneBytes(k), s.seal(k, v)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range vals {
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	for _, k := range nested {
		if err := sealBucket(s, b.Bucket(k)); err != nil {
			return err
		}
	}
	return nil
}

// Encrypt encrypts an unencrypted profile with a key derived from pass:
// every value is sealed in one transaction, then the file is compacted so
// that no plaintext copy stays in its free pages. Run it while no other
// process uses the profile.
func (s *Store) Encrypt(pass []byte) error {
	return s.encrypt(func(t *Tx) (*sealer, error) { return encryptAll(t, pass) })
}

// EncryptKeyring is Encrypt with a new random key kept in kr (the OS
// keyring) instead of a passphrase.
func (s *Store) EncryptKeyring(kr Keyring) error {
	return s.encrypt(func(t *Tx) (*sealer, error) { return encryptAllKeyring(t, kr) })
}

func (s *Store) encrypt(seal func(*Tx) (*sealer, error)) error {
	s.mu.Lock()
	encrypted := s.sealer != nil
	s.mu.Unlock()
	if encrypted {
		return ErrEncrypted
	}
	var sl *sealer
	err := s.Update(func(t *Tx) error {
		if t.bucket(bCrypt).Get(kKDF) != nil {
			return ErrEncrypted
		}
		var err error
		sl, err = seal(t)
		s.forgetPlain() // the transactions after this one check again until s.sealer is set
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sealer = sl
	s.mu.Unlock()
	return s.Compact()
}

// Protection says how the profile is kept at rest: "none", "passphrase"
// or "keyring".
func (s *Store) Protection() string {
	s.mu.Lock()
	sl := s.sealer
	s.mu.Unlock()
	if sl == nil {
		return "none"
	}
	return sl.kind
}

// Encrypted reports whether the profile's values are sealed.
func (s *Store) Encrypted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealer != nil
}

// lockedElsewhere refuses a transaction of a store opened without a key on
// a profile another process has encrypted since: its writes would be
// plaintext among sealed values.
func lockedElsewhere(tx *kvTx, sl *sealer) error {
	if sl != nil {
		return nil
	}
	if b := tx.Bucket(bCrypt); b != nil && b.Get(kKDF) != nil {
		return ErrLocked
	}
	return nil
}
