package suite

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// hexBytes decodes a hex string from JSON.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type cryptoBasics struct {
	CipherSuite ID `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestCryptoBasicsVectors runs every case of crypto-basics.json. Each case
// has six checks; the count per suite is logged.
func TestCryptoBasicsVectors(t *testing.T) {
	var cases []cryptoBasics
	loadJSON(t, "crypto-basics.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	implemented := 0
	for _, c := range cases {
		s, err := Lookup(c.CipherSuite)
		if errors.Is(err, ErrUnsupported) {
			t.Logf("skipping suite %d: not implemented", c.CipherSuite)
			continue
		}
		implemented++
		ran, failed := 0, 0
		check := func(name string, err error) {
			ran++
			if err != nil {
				failed++
				t.Errorf("suite %d %s: %v", c.CipherSuite, name, err)
			}
		}
		check("ref_hash", expectEq(s.RefHash(c.RefHash.Label, c.RefHash.Value), c.RefHash.Out))
		e := c.ExpandWithLabel
		out, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length)
		check("expand_with_label", firstErr(err, expectEq(out, e.Out)))
		d := c.DeriveSecret
		out, err = s.DeriveSecret(d.Secret, d.Label)
		check("derive_secret", firstErr(err, expectEq(out, d.Out)))
		g := c.DeriveTreeSecret
		out, err = s.DeriveTreeSecret(g.Secret, g.Label, g.Generation, g.Length)
		check("derive_tree_secret", firstErr(err, expectEq(out, g.Out)))
		check("sign_with_label", checkSign(s, &c))
		check("encrypt_with_label", checkEncrypt(s, &c))
		t.Logf("crypto-basics.json suite %d: %d checks ran, %d passed", c.CipherSuite, ran, ran-failed)
	}
	if implemented < 5 {
		t.Fatalf("only %d implemented suites found in vectors", implemented)
	}
}

func checkSign(s *Suite, c *cryptoBasics) error {
	v := c.SignWithLabel
	if err := s.VerifyWithLabel(SignaturePublicKey(v.Pub), v.Label, v.Content, v.Signature); err != nil {
		return err
	}
	signer, err := s.NewSigner(v.Priv)
	if err != nil {
		return err
	}
	if err := expectEq(signer.Public(), v.Pub); err != nil {
		return errors.New("public key from priv: " + err.Error())
	}
	if err := expectEq(signer.PrivateBytes(), v.Priv); err != nil {
		return errors.New("private key round trip: " + err.Error())
	}
	sig, err := s.SignWithLabel(signer, v.Label, v.Content)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(SignaturePublicKey(v.Pub), v.Label, v.Content, sig); err != nil {
		return err
	}
	if s.VerifyWithLabel(SignaturePublicKey(v.Pub), v.Label+"x", v.Content, sig) == nil {
		return errors.New("signature verified under a different label")
	}
	return nil
}

func checkEncrypt(s *Suite, c *cryptoBasics) error {
	v := c.EncryptWithLabel
	pub, err := s.HPKEPublicFromPrivate(HPKEPrivateKey(v.Priv))
	if err != nil {
		return err
	}
	if err := expectEq(pub, v.Pub); err != nil {
		return errors.New("public key from priv: " + err.Error())
	}
	pt, err := s.DecryptWithLabel(HPKEPrivateKey(v.Priv), v.Label, v.Context, HPKECiphertext{v.KEMOutput, v.Ciphertext})
	if err != nil {
		return err
	}
	if err := expectEq(pt, v.Plaintext); err != nil {
		return err
	}
	ct, err := s.EncryptWithLabel(HPKEPublicKey(v.Pub), v.Label, v.Context, v.Plaintext)
	if err != nil {
		return err
	}
	pt, err = s.DecryptWithLabel(HPKEPrivateKey(v.Priv), v.Label, v.Context, ct)
	if err != nil {
		return err
	}
	return expectEq(pt, v.Plaintext)
}

func expectEq(got, want []byte) error {
	if !bytes.Equal(got, want) {
		return errors.New("got " + hex.EncodeToString(got) + ", want " + hex.EncodeToString(want))
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
