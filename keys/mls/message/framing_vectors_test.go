package message

import (
	"bytes"
	"crypto/rand"
	"testing"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
)

type messageProtectionVector struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	Commit                  hexBytes `json:"commit"`
	CommitPub               hexBytes `json:"commit_pub"`
	CommitPriv              hexBytes `json:"commit_priv"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

// mpCase carries one vector case's keys through the checks.
type mpCase struct {
	s      *suite.Suite
	v      *messageProtectionVector
	ctx    *GroupContext
	signer *suite.Signer
}

func (c *mpCase) keys(t *testing.T) PrivateKeys {
	t.Helper()
	st, err := schedule.NewSecretTree(c.s, c.v.EncryptionSecret, 2, schedule.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return PrivateKeys{SenderDataSecret: c.v.SenderDataSecret, Tree: st}
}

func (c *mpCase) content(t ContentType, body []byte) *FramedContent {
	f := &FramedContent{GroupID: c.v.GroupID, Epoch: c.v.Epoch, Sender: Sender{Type: SenderMember, Index: 1},
		AuthenticatedData: []byte{}, ContentType: t}
	f.unmarshalBody(codec.NewReader(body))
	return f
}

// unprotectPublic verifies an MLSMessage(PublicMessage) and returns its
// encoded content body.
func (c *mpCase) unprotectPublic(t *testing.T, b []byte) []byte {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(b); err != nil || m.PublicMessage == nil {
		t.Fatalf("decode PublicMessage: %v", err)
	}
	if err := m.PublicMessage.VerifyPublic(c.s, c.v.MembershipKey, SignaturePublicKey(c.v.SignaturePub), c.ctx); err != nil {
		t.Fatal(err)
	}
	return bodyOf(&m.PublicMessage.Content)
}

func (c *mpCase) unprotectPrivate(t *testing.T, b []byte, keys PrivateKeys) []byte {
	t.Helper()
	var m MLSMessage
	if err := m.Unmarshal(b); err != nil || m.PrivateMessage == nil {
		t.Fatalf("decode PrivateMessage: %v", err)
	}
	a, err := DecryptPrivate(c.s, m.PrivateMessage, keys, func(a *AuthenticatedContent) error {
		return a.VerifySignature(c.s, SignaturePublicKey(c.v.SignaturePub), c.ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	return bodyOf(&a.Content)
}

func bodyOf(f *FramedContent) []byte {
	w := codec.NewWriter(nil)
	f.marshalBody(w)
	return w.Bytes()
}

// check runs the four checks of the vector for one content type.
func (c *mpCase) check(t *testing.T, typ ContentType, raw, pub, priv []byte) {
	if pub != nil {
		if got := c.unprotectPublic(t, pub); !bytes.Equal(got, raw) {
			t.Error("PublicMessage content differs")
		}
	}
	a, err := SignContent(c.s, c.signer, WirePublicMessage, c.content(typ, raw), c.ctx)
	if typ == ContentApplication {
		if err == nil {
			t.Error("application content protected as PublicMessage")
		}
	} else {
		if err != nil {
			t.Fatal(err)
		}
		if typ == ContentCommit {
			a.Auth.ConfirmationTag = bytes.Repeat([]byte{7}, c.s.Nh())
		}
		pm, err := NewPublicMessage(c.s, a, c.v.MembershipKey, c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := MLSMessage{WireFormat: WirePublicMessage, PublicMessage: pm}
		if got := c.unprotectPublic(t, m.Marshal()); !bytes.Equal(got, raw) {
			t.Error("own PublicMessage content differs")
		}
	}
	if got := c.unprotectPrivate(t, priv, c.keys(t)); !bytes.Equal(got, raw) {
		t.Error("PrivateMessage content differs")
	}
	a, err = SignContent(c.s, c.signer, WirePrivateMessage, c.content(typ, raw), c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if typ == ContentCommit {
		a.Auth.ConfirmationTag = bytes.Repeat([]byte{7}, c.s.Nh())
	}
	pm, err := EncryptPrivate(c.s, rand.Reader, a, c.keys(t), 32)
	if err != nil {
		t.Fatal(err)
	}
	m := MLSMessage{WireFormat: WirePrivateMessage, PrivateMessage: pm}
	if got := c.unprotectPrivate(t, m.Marshal(), c.keys(t)); !bytes.Equal(got, raw) {
		t.Error("own PrivateMessage content differs")
	}
}

func TestMessageProtectionVectors(t *testing.T) {
	var vs []messageProtectionVector
	loadVectors(t, "message-protection.json", &vs)
	tl := newTally("message-protection.json")
	for i := range vs {
		v := &vs[i]
		tl.SuiteCase(t, suite.ID(v.CipherSuite).String(), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			signer, err := s.NewSigner(v.SignaturePriv)
			if err != nil {
				t.Fatal(err)
			}
			c := &mpCase{s: s, v: v, signer: signer, ctx: &GroupContext{Version: MLS10, CipherSuite: s.ID(),
				GroupID: v.GroupID, Epoch: v.Epoch, TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash}}
			t.Run("proposal", func(t *testing.T) { c.check(t, ContentProposal, v.Proposal, v.ProposalPub, v.ProposalPriv) })
			t.Run("commit", func(t *testing.T) { c.check(t, ContentCommit, v.Commit, v.CommitPub, v.CommitPriv) })
			t.Run("application", func(t *testing.T) {
				w := codec.NewWriter(nil)
				w.Opaque(v.Application)
				c.check(t, ContentApplication, w.Bytes(), nil, v.ApplicationPriv)
			})
		})
	}
	tl.Report(t)
}
