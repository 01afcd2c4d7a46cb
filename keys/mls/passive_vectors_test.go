package mls

import (
	"bytes"
	"testing"
	"time"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

type passiveClientVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// vectorConfig accepts the vectors' credentials and skips KeyPackage
// lifetime checks (the vectors' lifetimes are not about today).
func vectorConfig() Config {
	return Config{Validator: handshake.AcceptAll{}, Now: func() time.Time { return time.Time{} }, KeepResumption: 1 << 20}
}

func runPassiveClient(t *testing.T, s *suite.Suite, v *passiveClientVector) {
	var kpm message.MLSMessage
	if err := kpm.Unmarshal(v.KeyPackage); err != nil || kpm.KeyPackage == nil {
		t.Fatalf("key package: %v", err)
	}
	kp := kpm.KeyPackage
	priv := &message.KeyPackagePrivate{Suite: s.ID(), InitKey: suite.HPKEPrivateKey(v.InitPriv),
		EncryptionKey: suite.HPKEPrivateKey(v.EncryptionPriv), SignatureKey: v.SignaturePriv}
	checkKeyPackagePrivate(t, s, kp, priv)
	opts := JoinOptions{RatchetTree: v.RatchetTree, ExternalPSKs: map[string][]byte{}}
	for _, p := range v.ExternalPSKs {
		opts.ExternalPSKs[string(p.PSKID)] = p.PSK
	}
	g, err := JoinFromWelcome(vectorConfig(), v.Welcome, kp, priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		t.Fatal("initial epoch authenticator differs")
	}
	for i, e := range v.Epochs {
		for j, p := range e.Proposals {
			if _, err := g.Process(p); err != nil {
				t.Fatalf("epoch %d proposal %d: %v", i, j, err)
			}
		}
		if _, err := g.Process(e.Commit); err != nil {
			t.Fatalf("epoch %d commit: %v", i, err)
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			t.Fatalf("epoch %d: epoch authenticator differs", i)
		}
	}
}

// checkKeyPackagePrivate verifies that the vector's private keys match
// the KeyPackage's public keys.
func checkKeyPackagePrivate(t *testing.T, s *suite.Suite, kp *message.KeyPackage, priv *message.KeyPackagePrivate) {
	t.Helper()
	signer, err := priv.Signer()
	if err != nil {
		t.Fatal(err)
	}
	initPub, err1 := s.HPKEPublicFromPrivate(priv.InitKey)
	encPub, err2 := s.HPKEPublicFromPrivate(priv.EncryptionKey)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(signer.Public(), kp.LeafNode.SignatureKey) || !bytes.Equal(initPub, kp.InitKey) ||
		!bytes.Equal(encPub, kp.LeafNode.EncryptionKey) {
		t.Fatal("private keys do not match the key package")
	}
}

func TestPassiveClientVectors(t *testing.T) {
	for _, file := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		t.Run(file, func(t *testing.T) {
			var vs []passiveClientVector
			loadVectors(t, file, &vs)
			tl := newTally(file)
			for i := range vs {
				v := &vs[i]
				name := suite.ID(v.CipherSuite).String() + "/case" + itoa(i)
				tl.SuiteCase(t, name, v.CipherSuite, func(t *testing.T, s *suite.Suite) { runPassiveClient(t, s, v) })
			}
			tl.Report(t)
		})
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
