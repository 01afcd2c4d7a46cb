package media

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"
)

func testKey(t testing.TB) Key {
	t.Helper()
	k, err := NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seal(t testing.TB, k Key, pt []byte) []byte {
	t.Helper()
	var ct bytes.Buffer
	s, err := Encrypt(&ct, bytes.NewReader(pt), k, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size != int64(ct.Len()) || s.PlainSize != int64(len(pt)) || s.SHA256 != sha256.Sum256(ct.Bytes()) {
		t.Fatalf("Sealed %+v does not describe %d ciphertext bytes of %d plaintext bytes", s, ct.Len(), len(pt))
	}
	return ct.Bytes()
}

func open(k Key, ct []byte) ([]byte, error) {
	var pt bytes.Buffer
	n, err := Decrypt(&pt, bytes.NewReader(ct), k)
	if n != int64(pt.Len()) {
		return nil, errors.New("returned size differs from what was written")
	}
	return pt.Bytes(), err
}

var sizes = []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 17, 5 * ChunkSize}

func TestRoundTrip(t *testing.T) {
	k := testKey(t)
	for _, n := range sizes {
		pt := make([]byte, n)
		rand.Read(pt)
		ct := seal(t, k, pt)
		if int64(len(ct)) != SealedSize(int64(n)) {
			t.Errorf("size %d: ciphertext %d bytes, SealedSize says %d", n, len(ct), SealedSize(int64(n)))
		}
		if p, err := PlainSize(int64(len(ct))); err != nil || p != int64(n) {
			t.Errorf("size %d: PlainSize(%d) = %d, %v", n, len(ct), p, err)
		}
		got, err := open(k, ct)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("size %d: round trip differs", n)
		}
	}
}

// TestRoundTripSmallReads feeds Encrypt and Decrypt through readers that
// return a few bytes at a time: chunking must not depend on read sizes.
func TestRoundTripSmallReads(t *testing.T) {
	k := testKey(t)
	pt := make([]byte, 2*ChunkSize+5)
	rand.Read(pt)
	salt := make([]byte, saltSize)
	rand.Read(salt)
	var a, b bytes.Buffer
	if _, err := Encrypt(&a, &trickle{r: bytes.NewReader(pt)}, k, bytes.NewReader(salt)); err != nil {
		t.Fatal(err)
	}
	if _, err := Encrypt(&b, bytes.NewReader(pt), k, bytes.NewReader(salt)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("ciphertext depends on how the plaintext was read")
	}
	var got bytes.Buffer
	if _, err := Decrypt(&got, &trickle{r: bytes.NewReader(a.Bytes())}, k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), pt) {
		t.Fatal("round trip differs")
	}
}

type trickle struct{ r io.Reader }

func (t *trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), 7)]) }

func TestSaltIsFresh(t *testing.T) {
	k := testKey(t)
	if bytes.Equal(seal(t, k, []byte("same")), seal(t, k, []byte("same"))) {
		t.Fatal("two encryptions of one file under one key are identical")
	}
}

func TestPlainSizeRefusesImpossibleSizes(t *testing.T) {
	for _, n := range []int64{0, 15, HeaderSize, HeaderSize + 15, HeaderSize + sealedChunk, HeaderSize + sealedChunk + 15, HeaderSize + 2*sealedChunk + 3} {
		if _, err := PlainSize(n); err == nil {
			t.Errorf("PlainSize(%d) accepted", n)
		}
	}
}

func TestTamperRefused(t *testing.T) {
	k := testKey(t)
	pt := make([]byte, 3*ChunkSize+100) // chunks 0-2 full, 3 short
	rand.Read(pt)
	ct := seal(t, k, pt)
	other := seal(t, testKey(t), pt)
	sameKey := seal(t, k, pt) // another salt, so other chunk keys
	hdr := func(b []byte) []byte { return b[:HeaderSize] }
	chunk := func(b []byte, i int) []byte {
		return b[HeaderSize+i*sealedChunk : min(len(b), HeaderSize+(i+1)*sealedChunk)]
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(i int) []byte { b := bytes.Clone(ct); b[i] ^= 1; return b }
	cases := map[string][]byte{
		"empty":                          nil,
		"header only":                    hdr(ct),
		"part of the header":             ct[:HeaderSize-1],
		"flip salt":                      flip(0),
		"flip commitment":                flip(saltSize + 3),
		"flip first chunk":               flip(HeaderSize),
		"flip tag of last chunk":         flip(len(ct) - 1),
		"flip middle chunk":              flip(HeaderSize + sealedChunk + 500),
		"final chunk dropped":            ct[:HeaderSize+3*sealedChunk],
		"truncated inside chunk":         ct[:len(ct)-1],
		"truncated to one chunk":         ct[:HeaderSize+sealedChunk],
		"truncated inside tag":           ct[:HeaderSize+2*sealedChunk+Overhead/2],
		"extended with a byte":           cat(ct, []byte{0}),
		"extended with a chunk":          cat(ct, chunk(ct, 1)),
		"chunks swapped":                 cat(hdr(ct), chunk(ct, 1), chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)),
		"chunk repeated":                 cat(hdr(ct), chunk(ct, 0), chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)),
		"chunk dropped":                  cat(hdr(ct), chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)),
		"chunk from another file":        cat(hdr(ct), chunk(ct, 0), chunk(other, 1), chunk(ct, 2), chunk(ct, 3)),
		"chunk of same key, other file":  cat(hdr(ct), chunk(ct, 0), chunk(sameKey, 1), chunk(ct, 2), chunk(ct, 3)),
		"header of same key, other file": cat(hdr(sameKey), chunk(ct, 0), chunk(ct, 1), chunk(ct, 2), chunk(ct, 3)),
		"last chunk from other file":     cat(hdr(ct), chunk(ct, 0), chunk(ct, 1), chunk(ct, 2), chunk(other, 3)),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := open(k, bad)
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
}

// TestTruncationNamed checks that a stream cut at a chunk boundary is
// reported as truncated (not only as unauthentic), which tells a client to
// resume its download rather than distrust the sender.
func TestTruncationNamed(t *testing.T) {
	k := testKey(t)
	ct := seal(t, k, make([]byte, 2*ChunkSize+1))
	for _, cut := range []int{0, HeaderSize - 1, HeaderSize, HeaderSize + sealedChunk, HeaderSize + 2*sealedChunk} {
		if _, err := open(k, ct[:cut]); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: got %v, want ErrTruncated", cut, err)
		}
	}
}

// TestWrongKeyRefused: the commitment refuses a wrong key before any
// chunk is decrypted.
func TestWrongKeyRefused(t *testing.T) {
	k := testKey(t)
	for _, n := range sizes {
		ct := seal(t, k, make([]byte, n))
		got, err := open(testKey(t), ct)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("size %d: wrong key gave %v", n, err)
		}
		if len(got) != 0 {
			t.Fatalf("size %d: %d bytes written before the failure", n, len(got))
		}
	}
	if _, err := Encrypt(io.Discard, bytes.NewReader(nil), Key{}, rand.Reader); err == nil {
		t.Fatal("zero key accepted by Encrypt")
	}
	if _, err := Decrypt(io.Discard, bytes.NewReader(make([]byte, 100)), Key{}); err == nil {
		t.Fatal("zero key accepted by Decrypt")
	}
}

// TestContextBound: the same key and ciphertext under another context
// string fail the commitment.
func TestContextBound(t *testing.T) {
	k := testKey(t)
	ct := seal(t, k, []byte("hello"))
	if _, err := decrypt(io.Discard, bytes.NewReader(ct), k, ""); !errors.Is(err, ErrAuth) {
		t.Fatalf("other context: %v", err)
	}
}

func TestKeyText(t *testing.T) {
	k := testKey(t)
	p, err := ParseKey(k.Text())
	if err != nil || !p.Equal(k) {
		t.Fatalf("ParseKey(Text) = %v, %v", p, err)
	}
	for _, bad := range []string{"", "AAAA", k.Text() + "A", "!!!!", Key{}.Text()} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if s := k.String(); bytes.Contains([]byte(s), []byte(k.Text())) {
		t.Fatal("String shows the key")
	}
}

func TestNonceLayout(t *testing.T) {
	m := &message{base: [nonceSize]byte{0: 0xaa, 7: 0x01, 11: 0x0f}}
	var n [nonceSize]byte
	m.nonce(&n, 0x0102)
	want := [nonceSize]byte{0: 0xaa, 7: 0x01, 10: 0x01, 11: 0x0d}
	if n != want {
		t.Fatalf("nonce = %x, want %x", n, want)
	}
	m.nonce(&n, 1<<37)
	if n[7] != 0x21 || n[11] != 0x0f {
		t.Fatalf("nonce = %x", n)
	}
}

func FuzzDecrypt(f *testing.F) {
	k, _ := KeyFromBytes(bytes.Repeat([]byte{1}, KeySize))
	for _, n := range []int{0, 1, ChunkSize, ChunkSize + 3} {
		var ct bytes.Buffer
		Encrypt(&ct, bytes.NewReader(make([]byte, n)), k, rand.Reader)
		f.Add(ct.Bytes())
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		var pt bytes.Buffer
		n, err := Decrypt(&pt, bytes.NewReader(ct), k)
		if n != int64(pt.Len()) {
			t.Fatalf("returned %d, wrote %d", n, pt.Len())
		}
		if err != nil {
			return
		}
		// Whatever authenticates must re-encrypt (with its salt) to the
		// same bytes: one encoding per plaintext, key and salt.
		var again bytes.Buffer
		if _, err := Encrypt(&again, bytes.NewReader(pt.Bytes()), k, bytes.NewReader(ct[:saltSize])); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), ct) {
			t.Fatal("accepted a ciphertext that is not the encryption of its plaintext")
		}
	})
}

func BenchmarkEncrypt(b *testing.B) { benchmark(b, true) }
func BenchmarkDecrypt(b *testing.B) { benchmark(b, false) }

func benchmark(b *testing.B, enc bool) {
	k := testKey(b)
	pt := make([]byte, 8<<20)
	r := mrand.NewChaCha8([32]byte{})
	r.Read(pt)
	ct := seal(b, k, pt)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		var err error
		if enc {
			_, err = Encrypt(io.Discard, bytes.NewReader(pt), k, rand.Reader)
		} else {
			_, err = Decrypt(io.Discard, bytes.NewReader(ct), k)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
