package suite

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
)

// detRand is a deterministic byte stream for reproducible keys in tests.
type detRand struct{ ctr uint64 }

func (d *detRand) Read(p []byte) (int, error) {
	for i := 0; i < len(p); i += 32 {
		d.ctr++
		sum := sha256.Sum256(fmt.Appendf(nil, "detrand %d", d.ctr))
		copy(p[i:], sum[:])
	}
	return len(p), nil
}

func allSuites(t testing.TB) []*Suite {
	var out []*Suite
	for _, id := range Supported() {
		s, err := Lookup(id)
		if err != nil {
			t.Fatalf("Lookup(%v): %v", id, err)
		}
		out = append(out, s)
	}
	return out
}

func TestLookupUnsupported(t *testing.T) {
	for _, id := range []ID{0, 4, 6, 8, 0xF002, 0xFFFF} {
		if _, err := Lookup(id); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Lookup(%v) = %v, want ErrUnsupported", id, err)
		}
	}
	s, err := Lookup(Default)
	if err != nil || s.ID() != 0xF001 || s.Nh() != 32 || s.Nk() != 32 || s.Nn() != 12 {
		t.Fatalf("default suite: %v %+v", err, s)
	}
}

// TestHPKERoundTripAllSuites covers every suite, including the hybrid one
// that has no official vectors: fresh keys, EncryptWithLabel round trip,
// and every way a ciphertext can be wrong.
func TestHPKERoundTripAllSuites(t *testing.T) {
	for _, s := range allSuites(t) {
		t.Run(s.Name(), func(t *testing.T) {
			priv, pub, err := s.GenerateKeyPair(&detRand{})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.HPKEPublicFromPrivate(priv); err != nil || !bytes.Equal(got, pub) {
				t.Fatalf("public from private: %v", err)
			}
			pt := []byte("group secrets")
			ct, err := s.EncryptWithLabel(pub, "Welcome", []byte("ctx"), pt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.DecryptWithLabel(priv, "Welcome", []byte("ctx"), ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("round trip: %v", err)
			}
			if len(ct.KEMOutput) != s.Nenc() || len(ct.Ciphertext) != len(pt)+s.AEADOverhead() {
				t.Fatalf("ciphertext sizes %d, %d; Nenc %d, overhead %d", len(ct.KEMOutput), len(ct.Ciphertext), s.Nenc(), s.AEADOverhead())
			}
			otherPriv, _, _ := s.GenerateKeyPair(&detRand{ctr: 99})
			bad := []struct {
				name  string
				priv  HPKEPrivateKey
				label string
				ctx   string
				ct    HPKECiphertext
			}{
				{"wrong key", otherPriv, "Welcome", "ctx", ct},
				{"wrong label", priv, "Welcomx", "ctx", ct},
				{"wrong context", priv, "Welcome", "ctX", ct},
				{"flipped ciphertext", priv, "Welcome", "ctx", HPKECiphertext{ct.KEMOutput, flip(ct.Ciphertext)}},
				{"flipped kem output", priv, "Welcome", "ctx", HPKECiphertext{flip(ct.KEMOutput), ct.Ciphertext}},
				{"short kem output", priv, "Welcome", "ctx", HPKECiphertext{ct.KEMOutput[:5], ct.Ciphertext}},
			}
			for _, b := range bad {
				if _, err := s.DecryptWithLabel(b.priv, b.label, []byte(b.ctx), b.ct); err == nil {
					t.Errorf("%s: decrypted", b.name)
				}
			}
			// DeriveKeyPair is deterministic.
			p1, q1, _ := s.DeriveKeyPair([]byte("ikm ikm ikm ikm ikm ikm ikm ikm!"))
			p2, q2, _ := s.DeriveKeyPair([]byte("ikm ikm ikm ikm ikm ikm ikm ikm!"))
			if !bytes.Equal(p1, p2) || !bytes.Equal(q1, q2) {
				t.Fatal("DeriveKeyPair not deterministic")
			}
			if err := s.ValidateHPKEPublicKey(pub[:len(pub)-1]); err == nil {
				t.Fatal("truncated public key accepted")
			}
		})
	}
}

func TestHybridSizes(t *testing.T) {
	s, _ := Lookup(HearthMLKEM768X25519AES256GCMSHA256Ed25519)
	priv, pub, err := s.GenerateKeyPair(&detRand{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := s.EncryptWithLabel(pub, "x", nil, []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if len(priv) != 32 || len(pub) != 1216 || len(ct.KEMOutput) != 1120 {
		t.Fatalf("sizes: priv %d pub %d enc %d", len(priv), len(pub), len(ct.KEMOutput))
	}
}

func TestSignAllSuites(t *testing.T) {
	for _, s := range allSuites(t) {
		t.Run(s.Name(), func(t *testing.T) {
			signer, err := s.GenerateSignatureKey(&detRand{})
			if err != nil {
				t.Fatal(err)
			}
			again, _ := s.GenerateSignatureKey(&detRand{})
			if !bytes.Equal(signer.Public(), again.Public()) {
				t.Fatal("key generation does not follow rand")
			}
			if err := s.ValidateSignaturePublicKey(signer.Public()); err != nil {
				t.Fatal(err)
			}
			reparsed, err := s.NewSigner(signer.PrivateBytes())
			if err != nil || !bytes.Equal(reparsed.Public(), signer.Public()) {
				t.Fatalf("NewSigner(PrivateBytes): %v", err)
			}
			sig, err := s.SignWithLabel(signer, "LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("content"), sig); err != nil {
				t.Fatal(err)
			}
			other, _ := s.GenerateSignatureKey(&detRand{ctr: 7})
			for name, err := range map[string]error{
				"tampered content": s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("contenT"), sig),
				"other label":      s.VerifyWithLabel(signer.Public(), "KeyPackageTBS", []byte("content"), sig),
				"other key":        s.VerifyWithLabel(other.Public(), "LeafNodeTBS", []byte("content"), sig),
				"tampered sig":     s.VerifyWithLabel(signer.Public(), "LeafNodeTBS", []byte("content"), flip(sig)),
				"garbage key":      s.VerifyWithLabel([]byte{1, 2, 3}, "LeafNodeTBS", []byte("content"), sig),
			} {
				if !errors.Is(err, ErrSignature) {
					t.Errorf("%s: got %v, want ErrSignature", name, err)
				}
			}
		})
	}
}

func TestSignerSchemeMismatch(t *testing.T) {
	s1, _ := Lookup(1)
	s2, _ := Lookup(2)
	ed, _ := s1.GenerateSignatureKey(&detRand{})
	if _, err := s2.SignWithLabel(ed, "x", nil); !errors.Is(err, ErrKey) {
		t.Fatalf("Ed25519 signer used with P-256 suite: %v", err)
	}
	if _, err := s2.NewSigner(make([]byte, 32)); !errors.Is(err, ErrKey) {
		t.Fatalf("zero P-256 scalar accepted: %v", err)
	}
	if _, err := s1.NewSigner(make([]byte, 31)); !errors.Is(err, ErrKey) {
		t.Fatalf("short Ed25519 seed accepted: %v", err)
	}
}

func TestAEAD(t *testing.T) {
	for _, s := range allSuites(t) {
		key, nonce := make([]byte, s.Nk()), make([]byte, s.Nn())
		io.ReadFull(&detRand{}, key)
		ct, err := s.Seal(key, nonce, []byte("aad"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.Open(key, nonce, []byte("aad"), ct); err != nil || string(pt) != "hello" {
			t.Fatalf("%s: open: %v", s.Name(), err)
		}
		if _, err := s.Open(key, nonce, []byte("aaD"), ct); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("%s: wrong aad: %v", s.Name(), err)
		}
		if _, err := s.Seal(key[:s.Nk()-1], nonce, nil, nil); !errors.Is(err, ErrKey) {
			t.Fatalf("%s: short key: %v", s.Name(), err)
		}
		if _, err := s.Seal(key, nonce[:11], nil, nil); !errors.Is(err, ErrKey) {
			t.Fatalf("%s: short nonce: %v", s.Name(), err)
		}
	}
}

func TestExpandLengthBounds(t *testing.T) {
	s, _ := Lookup(1)
	if _, err := s.ExpandWithLabel(make([]byte, 32), "x", nil, 255*32+1); !errors.Is(err, ErrLength) {
		t.Fatalf("over-long expand: %v", err)
	}
	if _, err := s.ExpandWithLabel(make([]byte, 32), "x", nil, -1); !errors.Is(err, ErrLength) {
		t.Fatalf("negative expand: %v", err)
	}
	mac := s.MAC([]byte("k"), []byte("d"))
	if !s.VerifyMAC([]byte("k"), []byte("d"), mac) || s.VerifyMAC([]byte("k"), []byte("D"), mac) {
		t.Fatal("VerifyMAC")
	}
}

func TestSecretsRedacted(t *testing.T) {
	s, _ := Lookup(1)
	priv, _, _ := s.GenerateKeyPair(&detRand{})
	signer, _ := s.GenerateSignatureKey(&detRand{})
	for _, verb := range []string{"%v", "%x", "%s", "%+v", "%#v"} {
		for _, v := range []any{priv, signer} {
			if got := fmt.Sprintf(verb, v); got != "[redacted]" {
				t.Errorf("%s of %T printed %q", verb, v, got)
			}
		}
	}
}

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 1
	return c
}

func TestHPKEExport(t *testing.T) {
	for _, s := range allSuites(t) {
		priv, pub, _ := s.GenerateKeyPair(&detRand{})
		enc, sec, err := s.ExportBaseS(pub, nil, "MLS 1.0 external init secret", s.Nh())
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ExportBaseR(priv, enc, nil, "MLS 1.0 external init secret", s.Nh())
		if err != nil || !bytes.Equal(got, sec) || len(sec) != s.Nh() {
			t.Fatalf("%s: export mismatch: %v", s.Name(), err)
		}
		other, _ := s.ExportBaseR(priv, enc, nil, "other context", s.Nh())
		if bytes.Equal(other, sec) {
			t.Fatalf("%s: exporter context ignored", s.Name())
		}
	}
}

// FuzzDecryptWithLabel feeds network-shaped garbage (kem output and
// ciphertext) to HPKE for the mandatory and the hybrid suite.
func FuzzDecryptWithLabel(f *testing.F) {
	var privs []HPKEPrivateKey
	var ss []*Suite
	for _, id := range []ID{Mandatory, Default} {
		s, _ := Lookup(id)
		priv, pub, _ := s.GenerateKeyPair(&detRand{})
		ct, _ := s.EncryptWithLabel(pub, "Welcome", nil, []byte("x"))
		f.Add(uint8(len(ss)), ct.KEMOutput, ct.Ciphertext)
		ss, privs = append(ss, s), append(privs, priv)
	}
	f.Fuzz(func(t *testing.T, which uint8, enc, ct []byte) {
		i := int(which) % len(ss)
		_, _ = ss[i].DecryptWithLabel(privs[i], "Welcome", nil, HPKECiphertext{enc, ct})
	})
}

// TestDeriveTreeSecretsMatches: DeriveTreeSecrets gives what
// DeriveTreeSecret gives for each label, for lengths up to and past the
// hash size, in every suite.
func TestDeriveTreeSecretsMatches(t *testing.T) {
	for _, id := range Supported() {
		s, err := Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		secret := make([]byte, s.Nh())
		for i := range secret {
			secret[i] = byte(i*7 + int(id))
		}
		labels := []string{"key", "nonce", "secret", "", "a longer label than the others", "x"}
		lengths := []int{s.Nk(), s.Nn(), s.Nh(), 0, s.Nh() + 1, 3 * s.Nh()}
		for _, gen := range []uint32{0, 1, 255, 256, 1 << 31, 0xFFFFFFFF} {
			got, err := s.DeriveTreeSecrets(secret, gen, labels, lengths)
			if err != nil {
				t.Fatal(err)
			}
			for i, label := range labels {
				want, err := s.DeriveTreeSecret(secret, label, gen, lengths[i])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[i], want) || len(got[i]) != lengths[i] {
					t.Errorf("suite %v gen %d label %q length %d: %x, want %x", id, gen, label, lengths[i], got[i], want)
				}
			}
		}
		if _, err := s.DeriveTreeSecrets(secret, 0, labels, lengths[:1]); err == nil {
			t.Errorf("suite %v: labels and lengths of different counts accepted", id)
		}
	}
}
