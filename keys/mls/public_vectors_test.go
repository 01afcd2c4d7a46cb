package mls

import (
	"bytes"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

// TestPublicGroupPassiveVectors runs the public path beside the passive
// client of every IETF passive-client vector: the hub's state starts from
// the Welcome's GroupInfo (which the test opens with the joiner's keys)
// and the vector's ratchet tree, takes every proposal with AddProposal and
// every commit with Apply, and must match the member's GroupContext and
// interim transcript hash after each epoch.
func TestPublicGroupPassiveVectors(t *testing.T) {
	for _, file := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		t.Run(file, func(t *testing.T) {
			var vs []passiveClientVector
			loadVectors(t, file, &vs)
			tl := newTally(file)
			for i := range vs {
				v := &vs[i]
				name := suite.ID(v.CipherSuite).String() + "/case" + itoa(i)
				tl.SuiteCase(t, name, v.CipherSuite, func(t *testing.T, s *suite.Suite) { runPublicPassive(t, s, v) })
			}
			tl.Report(t)
		})
	}
}

func runPublicPassive(t *testing.T, s *suite.Suite, v *passiveClientVector) {
	var kpm message.MLSMessage
	if err := kpm.Unmarshal(v.KeyPackage); err != nil || kpm.KeyPackage == nil {
		t.Fatalf("key package: %v", err)
	}
	kp := kpm.KeyPackage
	priv := &message.KeyPackagePrivate{Suite: s.ID(), InitKey: suite.HPKEPrivateKey(v.InitPriv), EncryptionKey: suite.HPKEPrivateKey(v.EncryptionPriv), SignatureKey: v.SignaturePriv}
	opts := JoinOptions{RatchetTree: v.RatchetTree, ExternalPSKs: map[string][]byte{}}
	for _, p := range v.ExternalPSKs {
		opts.ExternalPSKs[string(p.PSKID)] = p.PSK
	}
	g, err := JoinFromWelcome(vectorConfig(), v.Welcome, kp, priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := NewPublicGroup(vectorGroupInfo(t, s, v, kp, opts), v.RatchetTree, PublicOptions{Validator: handshake.AcceptAll{}})
	if err != nil {
		t.Fatal(err)
	}
	popts := PublicOptions{Validator: handshake.AcceptAll{}}
	samePublic(t, pg, g, -1)
	for i, e := range v.Epochs {
		for j, p := range e.Proposals {
			if _, err := g.Process(p); err != nil {
				t.Fatalf("epoch %d proposal %d: %v", i, j, err)
			}
			if pg, _, err = pg.AddProposal(p, popts); err != nil {
				t.Fatalf("epoch %d proposal %d: public: %v", i, j, err)
			}
		}
		if _, err := g.Process(e.Commit); err != nil {
			t.Fatalf("epoch %d commit: %v", i, err)
		}
		next, _, err := pg.Apply(e.Commit, popts)
		if err != nil {
			t.Fatalf("epoch %d commit: public: %v", i, err)
		}
		pg = next
		samePublic(t, pg, g, i)
	}
}

func samePublic(t *testing.T, pg *PublicGroup, g *Group, epoch int) {
	t.Helper()
	if !bytes.Equal(pg.ctx.Marshal(), g.st.ctx.Marshal()) || !bytes.Equal(pg.interim, g.st.interim) ||
		!bytes.Equal(pg.RatchetTree(), g.st.tree.Marshal()) {
		t.Fatalf("vector epoch %d: public state differs from the member's", epoch)
	}
}

// vectorGroupInfo opens the vector's Welcome with the joiner's keys and
// returns its GroupInfo as an MLSMessage.
func vectorGroupInfo(t *testing.T, s *suite.Suite, v *passiveClientVector, kp *message.KeyPackage, opts JoinOptions) []byte {
	t.Helper()
	var m message.MLSMessage
	if err := m.Unmarshal(v.Welcome); err != nil {
		t.Fatal(err)
	}
	gs, err := message.OpenGroupSecrets(s, m.Welcome, kp, suite.HPKEPrivateKey(v.InitPriv))
	if err != nil {
		t.Fatal(err)
	}
	g := &Group{s: s, st: &epochState{externalPSKs: opts.ExternalPSKs}}
	psk, err := g.pskSecret(g.st, gs.PSKs)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := message.OpenGroupInfo(s, m.Welcome, gs.JoinerSecret, psk)
	if err != nil {
		t.Fatal(err)
	}
	return (&message.MLSMessage{WireFormat: message.WireGroupInfo, GroupInfo: gi}).Marshal()
}
