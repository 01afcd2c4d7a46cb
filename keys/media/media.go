package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
)

const (
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// Overhead is what sealing adds to each chunk (the GCM tag).
	Overhead = 16
	// KeySize is the size of a file key.
	KeySize = 32

	sealedChunk = ChunkSize + Overhead
	hkdfInfo    = "hearth media v1 aes-256-gcm"
	maxChunks   = 1 << 40 // far below the 88-bit counter; 64 PiB of plaintext
)

// Errors returned by Decrypt. Callers test them with errors.Is.
var (
	// ErrAuth means a chunk failed to authenticate: wrong key, tampered,
	// reordered, truncated or extended ciphertext.
	ErrAuth = errors.New("media: ciphertext does not authenticate")
	// ErrTruncated means the ciphertext ended before its final chunk.
	ErrTruncated = errors.New("media: ciphertext truncated")
)

// Key is one file's secret key. The zero Key is not valid.
type Key struct{ b [KeySize]byte }

// NewKey draws a fresh key from rand (crypto/rand.Reader in production).
func NewKey(rand io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand, k.b[:]); err != nil {
		return Key{}, fmt.Errorf("media.NewKey: %w", err)
	}
	return k, nil
}

// KeyFromBytes makes a Key from its KeySize-byte encoding.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeySize {
		return k, fmt.Errorf("media: key must be %d bytes, not %d", KeySize, len(b))
	}
	copy(k.b[:], b)
	if k.isZero() {
		return Key{}, fmt.Errorf("media: all-zero key")
	}
	return k, nil
}

// ParseKey decodes the text form (unpadded base64url) of a Key.
func ParseKey(s string) (Key, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Key{}, fmt.Errorf("media: key: %w", err)
	}
	return KeyFromBytes(b)
}

// Bytes returns a copy of the key's bytes.
func (k Key) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Text returns the key as unpadded base64url, the form carried in messages.
func (k Key) Text() string { return base64.RawURLEncoding.EncodeToString(k.b[:]) }

// Equal compares two keys in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

func (k Key) isZero() bool { return k.Equal(Key{}) }

// String hides the key so that it never reaches a log by accident.
func (k Key) String() string { return "media.Key(redacted)" }

func (k Key) aead() (cipher.AEAD, error) {
	if k.isZero() {
		return nil, fmt.Errorf("media: zero key")
	}
	ak, err := hkdf.Key(sha256.New, k.b[:], nil, hkdfInfo, 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(ak)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func nonce(n *[12]byte, i uint64, final bool) {
	*n = [12]byte{}
	for j := 0; j < 8; j++ {
		n[10-j] = byte(i >> (8 * j))
	}
	if final {
		n[11] = 1
	}
}

// SealedSize returns the ciphertext size of a plaintext of n bytes.
func SealedSize(n int64) int64 {
	if n <= 0 {
		return Overhead
	}
	chunks := (n + ChunkSize - 1) / ChunkSize
	return n + chunks*Overhead
}

// PlainSize returns the plaintext size of a well-formed ciphertext of n
// bytes, or an error if no plaintext seals to that size.
func PlainSize(n int64) (int64, error) {
	if n < Overhead {
		return 0, fmt.Errorf("media: %d bytes is shorter than one sealed chunk", n)
	}
	full := n / sealedChunk
	rest := n % sealedChunk
	p := full * ChunkSize
	switch {
	case rest == 0:
	case rest > Overhead || full == 0:
		p += rest - Overhead
	default:
		return 0, fmt.Errorf("media: %d bytes is not a valid ciphertext size", n)
	}
	if SealedSize(p) != n {
		return 0, fmt.Errorf("media: %d bytes is not a valid ciphertext size", n)
	}
	return p, nil
}

// Sealed describes a ciphertext produced by Encrypt.
type Sealed struct {
	Size      int64    // ciphertext bytes written
	PlainSize int64    // plaintext bytes read
	SHA256    [32]byte // of the ciphertext
}

// Encrypt reads src to its end and writes its encryption under k to dst,
// one chunk at a time (memory stays constant whatever the size).
func Encrypt(dst io.Writer, src io.Reader, k Key) (Sealed, error) {
	const op = "media.Encrypt"
	var out Sealed
	a, err := k.aead()
	if err != nil {
		return out, fmt.Errorf("%s: %w", op, err)
	}
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	// Read one chunk ahead so that the last chunk is known to be last.
	cur := make([]byte, ChunkSize)
	next := make([]byte, ChunkSize)
	sealed := make([]byte, 0, sealedChunk)
	var n12 [12]byte
	cn, err := readChunk(src, cur)
	if err != nil {
		return out, fmt.Errorf("%s: read: %w", op, err)
	}
	for i := uint64(0); ; i++ {
		nn := 0
		if cn == ChunkSize {
			if nn, err = readChunk(src, next); err != nil {
				return out, fmt.Errorf("%s: read: %w", op, err)
			}
		}
		final := nn == 0
		if i >= maxChunks {
			return out, fmt.Errorf("%s: file too large", op)
		}
		nonce(&n12, i, final)
		sealed = a.Seal(sealed[:0], n12[:], cur[:cn], nil)
		if _, err := w.Write(sealed); err != nil {
			return out, fmt.Errorf("%s: write: %w", op, err)
		}
		out.Size += int64(len(sealed))
		out.PlainSize += int64(cn)
		if final {
			break
		}
		cur, next, cn = next, cur, nn
	}
	copy(out.SHA256[:], h.Sum(nil))
	return out, nil
}

// readChunk fills b as far as src allows; n < len(b) only at src's end.
func readChunk(src io.Reader, b []byte) (int, error) {
	n, err := io.ReadFull(src, b)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return n, err
}

// Decrypt reads the ciphertext src to its end and writes the plaintext to
// dst, each chunk after it authenticated. It returns the plaintext size.
// Any error leaves dst with at most the authentic chunks before the fault
// (see the package doc).
func Decrypt(dst io.Writer, src io.Reader, k Key) (int64, error) {
	const op = "media.Decrypt"
	a, err := k.aead()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	cur := make([]byte, sealedChunk)
	next := make([]byte, sealedChunk)
	plain := make([]byte, 0, ChunkSize)
	var n12 [12]byte
	var total int64
	cn, err := readChunk(src, cur)
	if err != nil {
		return 0, fmt.Errorf("%s: read: %w", op, err)
	}
	for i := uint64(0); ; i++ {
		if cn < Overhead {
			return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrTruncated)
		}
		nn := 0
		if cn == sealedChunk {
			if nn, err = readChunk(src, next); err != nil {
				return total, fmt.Errorf("%s: read: %w", op, err)
			}
		}
		final := nn == 0
		if final && cn == Overhead && i > 0 {
			// The encryptor never seals an empty final chunk after others.
			return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrAuth)
		}
		if i >= maxChunks {
			return total, fmt.Errorf("%s: file too large", op)
		}
		nonce(&n12, i, final)
		plain, err = a.Open(plain[:0], n12[:], cur[:cn], nil)
		if err != nil {
			if final && cn == sealedChunk {
				nonce(&n12, i, false)
				if _, e := a.Open(plain[:0], n12[:], cur[:cn], nil); e == nil {
					// A full chunk sealed as non-final with nothing after it.
					return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrTruncated)
				}
			}
			return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrAuth)
		}
		if _, err := dst.Write(plain); err != nil {
			return total, fmt.Errorf("%s: write: %w", op, err)
		}
		total += int64(len(plain))
		if final {
			return total, nil
		}
		cur, next, cn = next, cur, nn
	}
}

// HashWriter is an io.Writer that hashes what passes through it; callers
// use it to check a downloaded ciphertext against the SHA-256 in the
// message before decrypting.
type HashWriter struct {
	W io.Writer
	h hash.Hash
	n int64
}

// NewHashWriter returns a HashWriter writing to w.
func NewHashWriter(w io.Writer) *HashWriter { return &HashWriter{W: w, h: sha256.New()} }

func (hw *HashWriter) Write(p []byte) (int, error) {
	n, err := hw.W.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Sum returns the SHA-256 of everything written so far.
func (hw *HashWriter) Sum() [32]byte {
	var s [32]byte
	copy(s[:], hw.h.Sum(nil))
	return s
}

// Written returns how many bytes were written.
func (hw *HashWriter) Written() int64 { return hw.n }
