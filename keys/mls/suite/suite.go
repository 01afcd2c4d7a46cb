package suite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
	"hearth/keys/mls/codec"
)

// ID is an MLS cipher suite identifier (RFC 9420 §17.1).
type ID uint16

// Cipher suite identifiers.
const (
	MLS128X25519AES128GCMSHA256Ed25519        ID = 0x0001
	MLS128P256AES128GCMSHA256P256             ID = 0x0002
	MLS128X25519ChaCha20Poly1305SHA256Ed25519 ID = 0x0003
	MLS256X448AES256GCMSHA512Ed448            ID = 0x0004 // not implemented
	MLS256P521AES256GCMSHA512P521             ID = 0x0005
	MLS256X448ChaCha20Poly1305SHA512Ed448     ID = 0x0006 // not implemented
	MLS256P384AES256GCMSHA384P384             ID = 0x0007
	// HearthMLKEM768X25519AES256GCMSHA256Ed25519 is Hearth's private-use
	// hybrid post-quantum suite (see the package doc).
	HearthMLKEM768X25519AES256GCMSHA256Ed25519 ID = 0xF001

	// Mandatory is the suite every MLS implementation supports.
	Mandatory = MLS128X25519AES128GCMSHA256Ed25519
	// Default is the suite Hearth clients create groups with.
	Default = HearthMLKEM768X25519AES256GCMSHA256Ed25519
)

// Errors returned by this package; callers test them with errors.Is.
var (
	ErrUnsupported = errors.New("mls suite: unsupported cipher suite")
	ErrKey         = errors.New("mls suite: invalid key")
	ErrDecrypt     = errors.New("mls suite: decryption failed")
	ErrSignature   = errors.New("mls suite: invalid signature")
	ErrLength      = errors.New("mls suite: invalid length")
)

// Suite is one implemented cipher suite. Suites are immutable and safe for
// concurrent use; obtain them with Lookup.
type Suite struct {
	id     ID
	name   string
	newH   func() hash.Hash
	nh     int
	nk     int
	kem    hpke.KEM
	kdf    hpke.KDF
	aead   hpke.AEAD
	newAE  func(key []byte) (cipher.AEAD, error)
	sig    sigScheme
	curveN int // ECDSA field size in bytes; 0 for Ed25519
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var suites = map[ID]*Suite{
	MLS128X25519AES128GCMSHA256Ed25519: {
		id: 1, name: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
		newH: sha256.New, nh: 32, nk: 16,
		kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM(),
		newAE: newGCM, sig: sigEd25519{},
	},
	MLS128P256AES128GCMSHA256P256: {
		id: 2, name: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
		newH: sha256.New, nh: 32, nk: 16,
		kem: hpke.DHKEM(ecdh.P256()), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM(),
		newAE: newGCM, sig: sigECDSA{curve: elliptic.P256(), newH: sha256.New, size: 32},
	},
	MLS128X25519ChaCha20Poly1305SHA256Ed25519: {
		id: 3, name: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
		newH: sha256.New, nh: 32, nk: 32,
		kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), aead: hpke.ChaCha20Poly1305(),
		newAE: chacha20poly1305.New, sig: sigEd25519{},
	},
	MLS256P521AES256GCMSHA512P521: {
		id: 5, name: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
		newH: sha512.New, nh: 64, nk: 32,
		kem: hpke.DHKEM(ecdh.P521()), kdf: hpke.HKDFSHA512(), aead: hpke.AES256GCM(),
		newAE: newGCM, sig: sigECDSA{curve: elliptic.P521(), newH: sha512.New, size: 66},
	},
	MLS256P384AES256GCMSHA384P384: {
		id: 7, name: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
		newH: sha512.New384, nh: 48, nk: 32,
		kem: hpke.DHKEM(ecdh.P384()), kdf: hpke.HKDFSHA384(), aead: hpke.AES256GCM(),
		newAE: newGCM, sig: sigECDSA{curve: elliptic.P384(), newH: sha512.New384, size: 48},
	},
	HearthMLKEM768X25519AES256GCMSHA256Ed25519: {
		id: 0xF001, name: "HEARTH_MLKEM768X25519_AES256GCM_SHA256_Ed25519",
		newH: sha256.New, nh: 32, nk: 32,
		kem: hpke.MLKEM768X25519(), kdf: hpke.HKDFSHA256(), aead: hpke.AES256GCM(),
		newAE: newGCM, sig: sigEd25519{},
	},
}

// Lookup returns the implemented suite with the given id, or an error
// wrapping ErrUnsupported.
func Lookup(id ID) (*Suite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, id)
	}
	return s, nil
}

// Supported returns the ids of every implemented suite, ascending.
func Supported() []ID {
	return []ID{1, 2, 3, 5, 7, 0xF001}
}

// String names the suite id, e.g. "0x0001".
func (id ID) String() string { return fmt.Sprintf("0x%04X", uint16(id)) }

// ID returns the suite's identifier.
func (s *Suite) ID() ID { return s.id }

// Name returns the suite's registry name.
func (s *Suite) Name() string { return s.name }

// Nh is the output size of the hash (and of KDF.Extract) in bytes.
func (s *Suite) Nh() int { return s.nh }

// Nk is the AEAD key size in bytes.
func (s *Suite) Nk() int { return s.nk }

// Nenc returns the length of the suite KEM's encapsulation (RFC 9180
// Nenc): the kem_output of every HPKE ciphertext and of an ExternalInit.
func (s *Suite) Nenc() int {
	switch s.kem.ID() {
	case 0x0010: // DHKEM(P-256)
		return 65
	case 0x0011: // DHKEM(P-384)
		return 97
	case 0x0012: // DHKEM(P-521)
		return 133
	case 0x0020: // DHKEM(X25519)
		return 32
	case 0x647A: // MLKEM768-X25519
		return 1120
	}
	return 0
}

// AEADOverhead returns how many bytes the suite's AEAD adds to a
// plaintext (its tag).
func (s *Suite) AEADOverhead() int { return 16 }

// Nn is the AEAD nonce size in bytes (12 for every suite).
func (s *Suite) Nn() int { return 12 }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newH()
	h.Write(data)
	return h.Sum(nil)
}

// NewHash returns a new hash.Hash of the suite's hash function.
func (s *Suite) NewHash() hash.Hash { return s.newH() }

// Extract is HKDF-Extract(salt, ikm).
func (s *Suite) Extract(salt, ikm []byte) []byte {
	out, err := hkdf.Extract(s.newH, ikm, salt)
	if err != nil {
		panic("mls suite: HKDF-Extract: " + err.Error()) // cannot fail for these hashes
	}
	return out
}

// Expand is HKDF-Expand(secret, info, length).
func (s *Suite) Expand(secret, info []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*s.nh {
		return nil, fmt.Errorf("%w: HKDF-Expand length %d", ErrLength, length)
	}
	out, err := hkdf.Expand(s.newH, secret, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls suite: HKDF-Expand: %w", err)
	}
	return out, nil
}

const labelPrefix = "MLS 1.0 "

// ExpandWithLabel is RFC 9420 §5.1's ExpandWithLabel: Expand(secret,
// KDFLabel{length, "MLS 1.0 "+label, context}, length).
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xFFFF {
		return nil, fmt.Errorf("%w: ExpandWithLabel length %d", ErrLength, length)
	}
	w := codec.NewWriter(make([]byte, 0, 2+len(labelPrefix)+len(label)+len(context)+8))
	w.Uint16(uint16(length))
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	return s.Expand(secret, w.Bytes(), length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret is ExpandWithLabel(secret, label, uint32(generation), length)
// (RFC 9420 §9).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	var ctx [4]byte
	codec.NewWriter(ctx[:0]).Uint32(generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// DeriveTreeSecrets is DeriveTreeSecret(secret, labels[i], generation,
// lengths[i]) for each label, with one HMAC key set-up for them all (a
// ratchet step derives a key, a nonce and the next secret from one
// secret). For a length up to the hash size HKDF-Expand is one HMAC
// block, T(1) = HMAC(secret, info || 0x01); a longer one is expanded as
// DeriveTreeSecret does.
func (s *Suite) DeriveTreeSecrets(secret []byte, generation uint32, labels []string, lengths []int) ([][]byte, error) {
	if len(labels) != len(lengths) {
		return nil, fmt.Errorf("%w: %d labels, %d lengths", ErrLength, len(labels), len(lengths))
	}
	var ctx [4]byte
	codec.NewWriter(ctx[:0]).Uint32(generation)
	out := make([][]byte, len(labels))
	var mac hash.Hash
	var info, sum []byte
	for i, label := range labels {
		n := lengths[i]
		if n < 0 || n > s.nh {
			b, err := s.ExpandWithLabel(secret, label, ctx[:], n)
			if err != nil {
				return nil, err
			}
			out[i] = b
			continue
		}
		if mac == nil {
			mac = hmac.New(s.newH, secret)
		} else {
			mac.Reset()
		}
		w := codec.NewWriter(info[:0])
		w.Uint16(uint16(n))
		w.Opaque([]byte(labelPrefix + label))
		w.Opaque(ctx[:])
		info = append(w.Bytes(), 1) // HKDF-Expand's block counter
		mac.Write(info)
		sum = mac.Sum(sum[:0])
		out[i] = append([]byte(nil), sum[:n]...)
	}
	clear(sum)
	return out, nil
}

// MAC is HMAC with the suite hash.
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newH, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC reports in constant time whether mac is MAC(key, data).
func (s *Suite) VerifyMAC(key, data, mac []byte) bool {
	return subtle.ConstantTimeCompare(s.MAC(key, data), mac) == 1
}

func (s *Suite) aeadFor(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("%w: AEAD key is %d bytes, want %d", ErrKey, len(key), s.nk)
	}
	if len(nonce) != s.Nn() {
		return nil, fmt.Errorf("%w: AEAD nonce is %d bytes, want %d", ErrKey, len(nonce), s.Nn())
	}
	ae, err := s.newAE(key)
	if err != nil {
		return nil, fmt.Errorf("mls suite: AEAD: %w", err)
	}
	return ae, nil
}

// Seal encrypts and authenticates pt and aad with the suite AEAD.
func (s *Suite) Seal(key, nonce, aad, pt []byte) ([]byte, error) {
	ae, err := s.aeadFor(key, nonce)
	if err != nil {
		return nil, err
	}
	return ae.Seal(nil, nonce, pt, aad), nil
}

// Open decrypts ct with the suite AEAD; a failed check returns an error
// wrapping ErrDecrypt.
func (s *Suite) Open(key, nonce, aad, ct []byte) ([]byte, error) {
	ae, err := s.aeadFor(key, nonce)
	if err != nil {
		return nil, err
	}
	pt, err := ae.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
