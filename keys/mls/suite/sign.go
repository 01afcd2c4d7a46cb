package suite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"hash"
	"io"

	"hearth/keys/mls/codec"
)

// SignaturePublicKey is a signature public key as MLS serializes it: the
// raw Ed25519 key or the uncompressed SEC1 ECDSA point.
type SignaturePublicKey []byte

// Signer holds a private signature key. The key never leaves it except
// through PrivateBytes (for the device's own encrypted store); it formats
// as "[redacted]".
type Signer struct {
	scheme sigScheme
	key    crypto.Signer
	pub    SignaturePublicKey
	rand   io.Reader
}

// Public returns the signer's public key.
func (s *Signer) Public() SignaturePublicKey { return s.pub }

// PrivateBytes returns the serialized private key (Ed25519 seed or ECDSA
// big-endian scalar), as the IETF vectors encode it. Handle with care.
func (s *Signer) PrivateBytes() []byte { return s.scheme.privateBytes(s.key) }

// Format prints a redaction marker for every verb.
func (*Signer) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// sigScheme is one signature algorithm.
type sigScheme interface {
	name() string
	generate(rand io.Reader) (crypto.Signer, error)
	parsePrivate(b []byte) (crypto.Signer, error)
	privateBytes(k crypto.Signer) []byte
	publicBytes(k crypto.Signer) SignaturePublicKey
	sign(k crypto.Signer, rand io.Reader, msg []byte) ([]byte, error)
	verify(pub SignaturePublicKey, msg, sig []byte) bool
}

type sigEd25519 struct{}

func (sigEd25519) name() string { return "Ed25519" }

func (sigEd25519) generate(rand io.Reader) (crypto.Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

func (sigEd25519) parsePrivate(b []byte) (crypto.Signer, error) {
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("Ed25519 private key is %d bytes, want %d", len(b), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

func (sigEd25519) privateBytes(k crypto.Signer) []byte {
	return append([]byte(nil), k.(ed25519.PrivateKey).Seed()...)
}

func (sigEd25519) publicBytes(k crypto.Signer) SignaturePublicKey {
	return SignaturePublicKey(append([]byte(nil), k.Public().(ed25519.PublicKey)...))
}

func (sigEd25519) sign(k crypto.Signer, _ io.Reader, msg []byte) ([]byte, error) {
	return ed25519.Sign(k.(ed25519.PrivateKey), msg), nil
}

func (sigEd25519) verify(pub SignaturePublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(pub), msg, sig)
}

type sigECDSA struct {
	curve elliptic.Curve
	newH  func() hash.Hash
	size  int // field element size in bytes
}

func (e sigECDSA) name() string { return "ECDSA-" + e.curve.Params().Name }

func (e sigECDSA) generate(rand io.Reader) (crypto.Signer, error) {
	// Rejection-sample a scalar from rand so that key generation is a
	// deterministic function of the reader (Go 1.26 ignores custom readers
	// in ecdsa.GenerateKey).
	buf := make([]byte, e.size)
	defer clear(buf)
	topBits := e.curve.Params().N.BitLen() % 8
	for range 1000 {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, err
		}
		if topBits != 0 {
			buf[0] &= byte(1<<topBits - 1)
		}
		if k, err := ecdsa.ParseRawPrivateKey(e.curve, buf); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no valid %s scalar after 1000 tries", e.name())
}

func (e sigECDSA) parsePrivate(b []byte) (crypto.Signer, error) {
	// Some encoders (e.g. the IETF P-521 vectors) drop leading zero bytes
	// of the scalar; left-pad it to the field size.
	if size := (e.curve.Params().BitSize + 7) / 8; len(b) < size && len(b) > 0 {
		b = append(make([]byte, size-len(b)), b...)
	}
	return ecdsa.ParseRawPrivateKey(e.curve, b)
}

func (e sigECDSA) privateBytes(k crypto.Signer) []byte {
	b, err := k.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		panic("mls suite: ECDSA private key encoding: " + err.Error()) // only for foreign curves
	}
	return b
}

func (e sigECDSA) publicBytes(k crypto.Signer) SignaturePublicKey {
	b, err := k.Public().(*ecdsa.PublicKey).Bytes()
	if err != nil {
		panic("mls suite: ECDSA public key encoding: " + err.Error())
	}
	return SignaturePublicKey(b)
}

func (e sigECDSA) digest(msg []byte) []byte {
	h := e.newH()
	h.Write(msg)
	return h.Sum(nil)
}

func (e sigECDSA) sign(k crypto.Signer, rand io.Reader, msg []byte) ([]byte, error) {
	return ecdsa.SignASN1(rand, k.(*ecdsa.PrivateKey), e.digest(msg))
}

func (e sigECDSA) verify(pub SignaturePublicKey, msg, sig []byte) bool {
	pk, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub)
	if err != nil {
		return false
	}
	return ecdsa.VerifyASN1(pk, e.digest(msg), sig)
}

// GenerateSignatureKey makes a new private signature key for the suite's
// signature scheme from rand (crypto/rand.Reader if nil).
func (s *Suite) GenerateSignatureKey(rnd io.Reader) (*Signer, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	k, err := s.sig.generate(rnd)
	if err != nil {
		return nil, fmt.Errorf("mls suite: generating %s key: %w", s.sig.name(), err)
	}
	return &Signer{scheme: s.sig, key: k, pub: s.sig.publicBytes(k), rand: rand.Reader}, nil
}

// NewSigner parses a private signature key in the PrivateBytes encoding.
func (s *Suite) NewSigner(priv []byte) (*Signer, error) {
	k, err := s.sig.parsePrivate(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %s private key: %v", ErrKey, s.sig.name(), err)
	}
	return &Signer{scheme: s.sig, key: k, pub: s.sig.publicBytes(k), rand: rand.Reader}, nil
}

func signContent(label string, content []byte) []byte {
	w := codec.NewWriter(make([]byte, 0, len(labelPrefix)+len(label)+len(content)+8))
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(content)
	return w.Bytes()
}

// SignWithLabel signs SignContent{"MLS 1.0 "+label, content} (RFC 9420
// §5.1.2). The signer must belong to the suite's signature scheme.
func (s *Suite) SignWithLabel(signer *Signer, label string, content []byte) ([]byte, error) {
	if signer == nil || signer.scheme.name() != s.sig.name() {
		return nil, fmt.Errorf("%w: signer is not a %s key (suite %v)", ErrKey, s.sig.name(), s.id)
	}
	sig, err := s.sig.sign(signer.key, signer.rand, signContent(label, content))
	if err != nil {
		return nil, fmt.Errorf("mls suite: %s sign: %w", s.sig.name(), err)
	}
	return sig, nil
}

// VerifyWithLabel checks a SignWithLabel signature; failure returns an
// error wrapping ErrSignature.
func (s *Suite) VerifyWithLabel(pub SignaturePublicKey, label string, content, sig []byte) error {
	if !s.sig.verify(pub, signContent(label, content), sig) {
		return fmt.Errorf("%w: %s over %q", ErrSignature, s.sig.name(), label)
	}
	return nil
}

// ValidateSignaturePublicKey reports whether pub is a well-formed public
// key of the suite's signature scheme.
func (s *Suite) ValidateSignaturePublicKey(pub SignaturePublicKey) error {
	switch sc := s.sig.(type) {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key is %d bytes", ErrKey, len(pub))
		}
	case sigECDSA:
		if _, err := ecdsa.ParseUncompressedPublicKey(sc.curve, pub); err != nil {
			return fmt.Errorf("%w: %s public key: %v", ErrKey, sc.name(), err)
		}
	}
	return nil
}

// SignatureScheme names the suite's signature algorithm ("Ed25519",
// "ECDSA-P-256", …).
func (s *Suite) SignatureScheme() string { return s.sig.name() }
