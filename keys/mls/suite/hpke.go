package suite

import (
	"crypto/hpke"
	"fmt"
	"io"

	"hearth/keys/mls/codec"
)

// HPKEPublicKey is an HPKE public key in SerializePublicKey form.
type HPKEPublicKey []byte

// HPKEPrivateKey is an HPKE private key in SerializePrivateKey form. It
// formats as "[redacted]" so it cannot leak through logs.
type HPKEPrivateKey []byte

// Format prints a redaction marker for every verb.
func (HPKEPrivateKey) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// HPKECiphertext is the output of EncryptWithLabel (RFC 9420 §5.1.3).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (s *Suite) publicKey(pub HPKEPublicKey) (hpke.PublicKey, error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE public key for suite %v: %v", ErrKey, s.id, err)
	}
	return pk, nil
}

func (s *Suite) privateKey(priv HPKEPrivateKey) (hpke.PrivateKey, error) {
	// NIST-curve suites use the same curve for KEM and signatures; accept
	// scalars whose leading zero bytes were dropped (IETF P-521 vectors).
	if e, ok := s.sig.(sigECDSA); ok {
		if n := (e.curve.Params().BitSize + 7) / 8; len(priv) > 0 && len(priv) < n {
			priv = append(make(HPKEPrivateKey, n-len(priv)), priv...)
		}
	}
	sk, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key for suite %v", ErrKey, s.id)
	}
	return sk, nil
}

// SealBase is HPKE SealBase(pkR, info, aad, pt) in base mode with the
// suite's KEM, KDF and AEAD. It returns the encapsulated key and the
// ciphertext.
func (s *Suite) SealBase(pub HPKEPublicKey, info, aad, pt []byte) (enc, ct []byte, err error) {
	pk, err := s.publicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, snd, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: HPKE setup: %w", err)
	}
	ct, err = snd.Seal(aad, pt)
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: HPKE seal: %w", err)
	}
	return enc, ct, nil
}

// OpenBase is HPKE OpenBase(enc, skR, info, aad, ct). Any failure,
// including a malformed enc, returns an error wrapping ErrDecrypt.
func (s *Suite) OpenBase(priv HPKEPrivateKey, enc, info, aad, ct []byte) ([]byte, error) {
	sk, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	rcp, err := hpke.NewRecipient(enc, sk, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decapsulation: %v", ErrDecrypt, err)
	}
	pt, err := rcp.Open(aad, ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func encryptContext(label string, context []byte) []byte {
	w := codec.NewWriter(nil)
	w.Opaque([]byte(labelPrefix + label))
	w.Opaque(context)
	return w.Bytes()
}

// EncryptWithLabel is RFC 9420 §5.1.3's EncryptWithLabel: SealBase with
// info = EncryptContext{"MLS 1.0 "+label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub HPKEPublicKey, label string, context, pt []byte) (HPKECiphertext, error) {
	enc, ct, err := s.SealBase(pub, encryptContext(label, context), nil, pt)
	if err != nil {
		return HPKECiphertext{}, err
	}
	return HPKECiphertext{KEMOutput: enc, Ciphertext: ct}, nil
}

// DecryptWithLabel reverses EncryptWithLabel.
func (s *Suite) DecryptWithLabel(priv HPKEPrivateKey, label string, context []byte, ct HPKECiphertext) ([]byte, error) {
	return s.OpenBase(priv, ct.KEMOutput, encryptContext(label, context), nil, ct.Ciphertext)
}

// DeriveKeyPair is the KEM's RFC 9180 DeriveKeyPair(ikm).
func (s *Suite) DeriveKeyPair(ikm []byte) (HPKEPrivateKey, HPKEPublicKey, error) {
	sk, err := s.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: HPKE DeriveKeyPair: %w", err)
	}
	return serializePair(sk)
}

// GenerateKeyPair makes a fresh HPKE key pair from 64 bytes of rand, via
// DeriveKeyPair, so tests control randomness.
func (s *Suite) GenerateKeyPair(rand io.Reader) (HPKEPrivateKey, HPKEPublicKey, error) {
	ikm := make([]byte, 64)
	if _, err := io.ReadFull(rand, ikm); err != nil {
		return nil, nil, fmt.Errorf("mls suite: reading randomness: %w", err)
	}
	defer clear(ikm)
	return s.DeriveKeyPair(ikm)
}

// HPKEPublicFromPrivate returns the public key of priv, which also checks
// that priv is well-formed for the suite.
func (s *Suite) HPKEPublicFromPrivate(priv HPKEPrivateKey) (HPKEPublicKey, error) {
	sk, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	return HPKEPublicKey(sk.PublicKey().Bytes()), nil
}

// ValidateHPKEPublicKey reports whether pub is a valid public key of the
// suite's KEM.
func (s *Suite) ValidateHPKEPublicKey(pub HPKEPublicKey) error {
	_, err := s.publicKey(pub)
	return err
}

func serializePair(sk hpke.PrivateKey) (HPKEPrivateKey, HPKEPublicKey, error) {
	b, err := sk.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: serializing HPKE private key: %w", err)
	}
	return HPKEPrivateKey(b), HPKEPublicKey(sk.PublicKey().Bytes()), nil
}

// ExportBaseS sets up a base-mode HPKE sender to pub with info and
// returns the encapsulated key and Export(exporterContext, length). MLS
// uses it for external commits (RFC 9420 §8.3).
func (s *Suite) ExportBaseS(pub HPKEPublicKey, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	pk, err := s.publicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, snd, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: HPKE setup: %w", err)
	}
	secret, err = snd.Export(exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("mls suite: HPKE export: %w", err)
	}
	return enc, secret, nil
}

// ExportBaseR is the receiving side of ExportBaseS.
func (s *Suite) ExportBaseR(priv HPKEPrivateKey, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	sk, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	rcp, err := hpke.NewRecipient(enc, sk, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decapsulation: %v", ErrDecrypt, err)
	}
	secret, err := rcp.Export(exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("mls suite: HPKE export: %w", err)
	}
	return secret, nil
}
