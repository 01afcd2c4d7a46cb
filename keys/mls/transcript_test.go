package mls

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
		c.suiteCase(t, fmt.Sprintf("case%d/suite%d", i, v.CipherSuite), v.CipherSuite, func(t *testing.T, s *suite.Suite) {
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
	c.report(t)
}
