package schedule

import (
	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// ConfirmedTranscriptHash is Hash(interim_transcript_hash_[n-1] ||
// ConfirmedTranscriptHashInput_[n]) (RFC 9420 §8.2). input is the encoded
// ConfirmedTranscriptHashInput (wire_format, FramedContent, signature).
// For the first epoch, interim is empty.
func ConfirmedTranscriptHash(s *suite.Suite, interim, input []byte) []byte {
	h := s.NewHash()
	h.Write(interim)
	h.Write(input)
	return h.Sum(nil)
}

// InterimTranscriptHash is Hash(confirmed_transcript_hash_[n] ||
// InterimTranscriptHashInput_[n]), where the input is the confirmation tag
// as an opaque<V> MAC.
func InterimTranscriptHash(s *suite.Suite, confirmed, confirmationTag []byte) []byte {
	w := codec.NewWriter(append([]byte(nil), confirmed...))
	w.Opaque(confirmationTag)
	return s.Hash(w.Bytes())
}
