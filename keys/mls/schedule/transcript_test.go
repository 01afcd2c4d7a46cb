package schedule

import (
	"bytes"
	"fmt"
	"testing"

	"hearth/keys/mls/codec"
)

type transcriptCase struct {
	CipherSuite                 uint16   `json:"cipher_suite"`
	ConfirmationKey             hexBytes `json:"confirmation_key"`
	AuthenticatedContent        hexBytes `json:"authenticated_content"`
	InterimTranscriptHashBefore hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAft  hexBytes `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter  hexBytes `json:"interim_transcript_hash_after"`
}

// TestTranscriptHashVectors runs transcript-hashes.json without parsing
// FramedContent: a Commit's AuthenticatedContent ends with its
// confirmation_tag, an opaque<V> of Nh bytes (varint header of 1 byte, or
// 2 for SHA-512), and everything before it is exactly the
// ConfirmedTranscriptHashInput (wire_format, content, signature). The
// split is confirmed by the confirmation tag's MAC check, which would fail
// for any other split.
func TestTranscriptHashVectors(t *testing.T) {
	const file = "transcript-hashes.json"
	var cases []transcriptCase
	loadJSON(t, file, &cases)
	tl, implemented := tally{}, map[uint16]bool{}
	for i, c := range cases {
		s := lookupOrSkip(t, file, suiteID(c.CipherSuite))
		if s == nil {
			continue
		}
		implemented[c.CipherSuite] = true
		ac, nh := c.AuthenticatedContent, s.Nh()
		hdr := codec.NewWriter(nil)
		hdr.Varint(nh)
		cut := len(ac) - nh - len(hdr.Bytes())
		if cut < 0 || !bytes.Equal(ac[cut:cut+len(hdr.Bytes())], hdr.Bytes()) {
			t.Fatalf("case %d: authenticated_content does not end with an Nh-byte tag", i)
		}
		input, tag := ac[:cut], ac[len(ac)-nh:]
		confirmed := ConfirmedTranscriptHash(s, c.InterimTranscriptHashBefore, input)
		tl.check(t, s.ID(), fmt.Sprintf("case %d confirmed_transcript_hash_after", i), confirmed, c.ConfirmedTranscriptHashAft)
		e := &Epoch{Suite: s.ID(), ConfirmationKey: c.ConfirmationKey}
		if !e.VerifyConfirmationTag(confirmed, tag) {
			t.Errorf("case %d: confirmation tag does not verify", i)
		}
		want, _ := e.ConfirmationTag(confirmed)
		tl.check(t, s.ID(), fmt.Sprintf("case %d confirmation_tag", i), want, tag)
		interim := InterimTranscriptHash(s, confirmed, tag)
		tl.check(t, s.ID(), fmt.Sprintf("case %d interim_transcript_hash_after", i), interim, c.InterimTranscriptHashAfter)
	}
	tl.log(t, file, len(implemented))
}
