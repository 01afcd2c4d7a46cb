package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
)

const (
	// ChunkSize is the plaintext size of every chunk but the last, which
	// is always shorter (and empty when the size is a multiple of it).
	ChunkSize = 16 << 10
	// Overhead is what sealing adds to each chunk (the GCM tag).
	Overhead = 16
	// HeaderSize is the salt and key commitment before the chunks.
	HeaderSize = saltSize + commitSize
	// KeySize is the size of a file key.
	KeySize = 32

	saltSize    = 24
	commitSize  = 32
	nonceSize   = 12
	sealedChunk = ChunkSize + Overhead
	maxChunks   = 1 << 38 // the spec's limit: 4 PiB
	aeadName    = "AEAD_AES_256_GCM"
	infoPrefix  = "c2sp.org/chunked-encryption@v1+"
	// Context is the C2SP context string Hearth binds into every file's
	// key derivation.
	Context = "hearth.media.v1"
)

// Errors returned by Decrypt. Callers test them with errors.Is.
var (
	// ErrAuth means the ciphertext does not authenticate: wrong key (the
	// commitment differs), tampered, reordered or extended ciphertext.
	ErrAuth = errors.New("media: ciphertext does not authenticate")
	// ErrTruncated means the ciphertext ended before its short final chunk.
	ErrTruncated = errors.New("media: ciphertext truncated")
)

// Key is one file's secret input key. The zero Key is not valid.
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

// message is one file's derived state: AEAD, base nonce, commitment.
type message struct {
	aead   cipher.AEAD
	base   [nonceSize]byte
	commit [commitSize]byte
}

// derive runs the C2SP key derivation (HKDF-Expand with SHA-512, the
// Cobblestone-256 instantiation) for one salt and context.
func derive(k Key, salt []byte, context string) (*message, error) {
	if k.isZero() {
		return nil, fmt.Errorf("media: zero key")
	}
	info := infoPrefix + aeadName + "\x00" + string(salt) + context
	out, err := hkdf.Expand(sha512.New, k.b[:], info, KeySize+nonceSize+commitSize)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(out[:KeySize])
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	m := &message{aead: a}
	copy(m.base[:], out[KeySize:KeySize+nonceSize])
	copy(m.commit[:], out[KeySize+nonceSize:])
	return m, nil
}

// nonce is the base nonce XOR the chunk counter (big-endian).
func (m *message) nonce(n *[nonceSize]byte, i uint64) {
	*n = m.base
	for j := 0; j < 8; j++ {
		n[nonceSize-1-j] ^= byte(i >> (8 * j))
	}
}

// SealedSize returns the ciphertext size of a plaintext of n bytes.
func SealedSize(n int64) int64 {
	n = max(n, 0)
	return HeaderSize + n + (n/ChunkSize+1)*Overhead
}

// PlainSize returns the plaintext size of a well-formed ciphertext of n
// bytes, or an error if no plaintext seals to that size.
func PlainSize(n int64) (int64, error) {
	body := n - HeaderSize
	rest := body % sealedChunk
	if body < Overhead || rest < Overhead {
		return 0, fmt.Errorf("media: %d bytes is not a valid ciphertext size", n)
	}
	return body/sealedChunk*ChunkSize + rest - Overhead, nil
}

// Sealed describes a ciphertext produced by Encrypt.
type Sealed struct {
	Size      int64    // ciphertext bytes written
	PlainSize int64    // plaintext bytes read
	SHA256    [32]byte // of the ciphertext
}

// Encrypt reads src to its end and writes its encryption under k to dst
// (salt from rand, then the commitment, then the chunks), one chunk at a
// time: memory stays constant whatever the size.
func Encrypt(dst io.Writer, src io.Reader, k Key, rand io.Reader) (Sealed, error) {
	return encrypt(dst, src, k, rand, Context)
}

func encrypt(dst io.Writer, src io.Reader, k Key, rand io.Reader, context string) (Sealed, error) {
	const op = "media.Encrypt"
	var out Sealed
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return out, fmt.Errorf("%s: salt: %w", op, err)
	}
	m, err := derive(k, salt, context)
	if err != nil {
		return out, fmt.Errorf("%s: %w", op, err)
	}
	h := sha256.New()
	w := io.MultiWriter(dst, h)
	if _, err := w.Write(append(salt, m.commit[:]...)); err != nil {
		return out, fmt.Errorf("%s: write: %w", op, err)
	}
	out.Size = HeaderSize
	buf := make([]byte, ChunkSize)
	sealed := make([]byte, 0, sealedChunk)
	var n12 [nonceSize]byte
	for i := uint64(0); ; i++ {
		if i >= maxChunks {
			return out, fmt.Errorf("%s: file too large", op)
		}
		n, err := io.ReadFull(src, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return out, fmt.Errorf("%s: read: %w", op, err)
		}
		m.nonce(&n12, i)
		sealed = m.aead.Seal(sealed[:0], n12[:], buf[:n], nil)
		if _, err := w.Write(sealed); err != nil {
			return out, fmt.Errorf("%s: write: %w", op, err)
		}
		out.Size += int64(len(sealed))
		out.PlainSize += int64(n)
		if n < ChunkSize { // the short final chunk, possibly empty
			break
		}
	}
	copy(out.SHA256[:], h.Sum(nil))
	return out, nil
}

// Decrypt reads the ciphertext src to its end and writes the plaintext to
// dst, each chunk after it authenticated. It returns the plaintext size.
// A wrong key is refused before any chunk is decrypted (commitment); any
// other error leaves dst with at most the authentic chunks before the
// fault (see the package doc).
func Decrypt(dst io.Writer, src io.Reader, k Key) (int64, error) {
	return decrypt(dst, src, k, Context)
}

func decrypt(dst io.Writer, src io.Reader, k Key, context string) (int64, error) {
	const op = "media.Decrypt"
	hdr := make([]byte, HeaderSize)
	if _, err := io.ReadFull(src, hdr); err == io.EOF || err == io.ErrUnexpectedEOF {
		return 0, fmt.Errorf("%s: header: %w", op, ErrTruncated)
	} else if err != nil {
		return 0, fmt.Errorf("%s: read: %w", op, err)
	}
	m, err := derive(k, hdr[:saltSize], context)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if subtle.ConstantTimeCompare(m.commit[:], hdr[saltSize:]) != 1 {
		return 0, fmt.Errorf("%s: key commitment: %w", op, ErrAuth)
	}
	buf := make([]byte, sealedChunk)
	plain := make([]byte, 0, ChunkSize)
	var n12 [nonceSize]byte
	var total int64
	for i := uint64(0); ; i++ {
		if i >= maxChunks {
			return total, fmt.Errorf("%s: file too large", op)
		}
		n, err := io.ReadFull(src, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return total, fmt.Errorf("%s: read: %w", op, err)
		}
		if n < Overhead {
			// Nothing (or less than a tag) after full chunks: the short
			// final chunk is missing.
			return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrTruncated)
		}
		m.nonce(&n12, i)
		plain, err = m.aead.Open(plain[:0], n12[:], buf[:n], nil)
		if err != nil {
			return total, fmt.Errorf("%s: chunk %d: %w", op, i, ErrAuth)
		}
		if _, err := dst.Write(plain); err != nil {
			return total, fmt.Errorf("%s: write: %w", op, err)
		}
		total += int64(len(plain))
		if n < sealedChunk {
			return total, nil // the short final chunk, and src is at its end
		}
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
