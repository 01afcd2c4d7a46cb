package message

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
)

type welcomeVector struct {
	CipherSuite uint16   `json:"cipher_suite"`
	InitPriv    hexBytes `json:"init_priv"`
	SignerPub   hexBytes `json:"signer_pub"`
	KeyPackage  hexBytes `json:"key_package"`
	Welcome     hexBytes `json:"welcome"`
}

func TestWelcomeVectors(t *testing.T) {
	var vs []welcomeVector
	loadVectors(t, "welcome.json", &vs)
	c := newTally("welcome.json")
	for i, v := range vs {
		c.SuiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			var kpm, wm MLSMessage
			if err := kpm.Unmarshal(v.KeyPackage); err != nil || kpm.KeyPackage == nil {
				t.Fatalf("key package: %v", err)
			}
			if err := wm.Unmarshal(v.Welcome); err != nil || wm.Welcome == nil {
				t.Fatalf("welcome: %v", err)
			}
			if err := kpm.KeyPackage.Verify(s); err != nil {
				t.Errorf("key package: %v", err)
			}
			gs, err := OpenGroupSecrets(s, wm.Welcome, kpm.KeyPackage, suite.HPKEPrivateKey(v.InitPriv))
			if err != nil {
				t.Fatal(err)
			}
			gi, err := OpenGroupInfo(s, wm.Welcome, gs.JoinerSecret, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := gi.Verify(s, SignaturePublicKey(v.SignerPub)); err != nil {
				t.Error(err)
			}
			epoch, err := schedule.FromJoiner(s, gs.JoinerSecret, nil, gi.GroupContext.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !epoch.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
				t.Error("confirmation tag does not verify")
			}
			// A different init key must not open the secrets.
			other, _, err := s.GenerateKeyPair(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := OpenGroupSecrets(s, wm.Welcome, kpm.KeyPackage, other); err == nil {
				t.Error("group secrets opened with a wrong key")
			}
			if !bytes.Equal(gi.Marshal(), mustDecryptRaw(t, s, wm.Welcome, gs.JoinerSecret)) {
				t.Error("group info re-encoding differs")
			}
		})
	}
	c.Report(t)
}

func mustDecryptRaw(t *testing.T, s *suite.Suite, w *Welcome, joiner []byte) []byte {
	t.Helper()
	key, nonce, err := welcomeKeyNonce(s, joiner, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}
