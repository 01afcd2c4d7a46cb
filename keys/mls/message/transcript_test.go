package message

import (
	"bytes"
	"fmt"
	"testing"

	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
)

type transcriptVector struct {
	CipherSuite          uint16   `json:"cipher_suite"`
	ConfirmationKey      hexBytes `json:"confirmation_key"`
	AuthenticatedContent hexBytes `json:"authenticated_content"`
	InterimBefore        hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedAfter       hexBytes `json:"confirmed_transcript_hash_after"`
	InterimAfter         hexBytes `json:"interim_transcript_hash_after"`
}

func TestTranscriptHashesVectors(t *testing.T) {
	var vs []transcriptVector
	loadVectors(t, "transcript-hashes.json", &vs)
	c := newTally("transcript-hashes.json")
	for i, v := range vs {
		c.SuiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
			var ac AuthenticatedContent
			if err := ac.Unmarshal(v.AuthenticatedContent); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ac.Marshal(), v.AuthenticatedContent) {
				t.Error("AuthenticatedContent re-encoding differs")
			}
			if ac.Content.ContentType != ContentCommit {
				t.Fatalf("content type %d, want commit", ac.Content.ContentType)
			}
			if !s.VerifyMAC(v.ConfirmationKey, v.ConfirmedAfter, ac.Auth.ConfirmationTag) {
				t.Error("confirmation tag does not verify")
			}
			confirmed := schedule.ConfirmedTranscriptHash(s, v.InterimBefore, ac.ConfirmedTranscriptHashInput())
			if !bytes.Equal(confirmed, v.ConfirmedAfter) {
				t.Errorf("confirmed transcript hash = %x, want %x", confirmed, v.ConfirmedAfter)
			}
			interim := schedule.InterimTranscriptHash(s, confirmed, ac.Auth.ConfirmationTag)
			if !bytes.Equal(interim, v.InterimAfter) {
				t.Errorf("interim transcript hash = %x, want %x", interim, v.InterimAfter)
			}
		})
	}
	c.Report(t)
}

func TestProposalRef(t *testing.T) {
	s, err := suite.Lookup(suite.Mandatory)
	if err != nil {
		t.Fatal(err)
	}
	ac := &AuthenticatedContent{WireFormat: WirePublicMessage, Content: FramedContent{
		GroupID: []byte("g"), Epoch: 3, Sender: Sender{Type: SenderMember, Index: 1},
		ContentType: ContentProposal, Proposal: &Proposal{Type: ProposalRemove, Remove: 2}},
		Auth: FramedContentAuthData{Signature: []byte("sig")}}
	ref := ac.ProposalRef(s)
	if !bytes.Equal(ref, s.RefHash("MLS 1.0 Proposal Reference", ac.Marshal())) {
		t.Error("ProposalRef is not RefHash over the AuthenticatedContent")
	}
	ac.Content.Proposal.Remove = 3
	if bytes.Equal(ref, ac.ProposalRef(s)) {
		t.Error("different proposals share a reference")
	}
}
