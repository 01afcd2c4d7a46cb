package schedule

import (
	"fmt"

	"hearth/keys/mls/codec"
	"hearth/keys/mls/suite"
)

// PSKType values of PreSharedKeyID (RFC 9420 §8.4).
const (
	PSKExternal   uint8 = 1
	PSKResumption uint8 = 2
)

// ResumptionPSKUsage values (RFC 9420 §8.4).
const (
	ResumptionApplication uint8 = 1
	ResumptionReinit      uint8 = 2
	ResumptionBranch      uint8 = 3
)

// PSK is one pre-shared key with its encoded PreSharedKeyID.
type PSK struct {
	ID     []byte // encoded PreSharedKeyID
	Secret []byte // the PSK value
}

// ExternalPSKID encodes PreSharedKeyID{external, psk_id, psk_nonce}.
func ExternalPSKID(pskID, nonce []byte) []byte {
	w := codec.NewWriter(nil)
	w.Uint8(PSKExternal)
	w.Opaque(pskID)
	w.Opaque(nonce)
	return w.Bytes()
}

// ResumptionPSKID encodes PreSharedKeyID{resumption, usage, psk_group_id,
// psk_epoch, psk_nonce}.
func ResumptionPSKID(usage uint8, groupID []byte, epoch uint64, nonce []byte) []byte {
	w := codec.NewWriter(nil)
	w.Uint8(PSKResumption)
	w.Uint8(usage)
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Opaque(nonce)
	return w.Bytes()
}

// PSKSecret combines psks into psk_secret (RFC 9420 §8.4). With no PSKs
// it returns the all-zero secret, as the key schedule expects.
func PSKSecret(s *suite.Suite, psks []PSK) ([]byte, error) {
	if len(psks) > 0xFFFF {
		return nil, fmt.Errorf("%w: %d PSKs", ErrInput, len(psks))
	}
	zero := make([]byte, s.Nh())
	secret := zero
	for i, p := range psks {
		w := codec.NewWriter(nil)
		w.Raw(p.ID)
		w.Uint16(uint16(i))
		w.Uint16(uint16(len(psks)))
		extracted := s.Extract(zero, p.Secret)
		input, err := s.ExpandWithLabel(extracted, "derived psk", w.Bytes(), s.Nh())
		clear(extracted)
		if err != nil {
			return nil, fmt.Errorf("mls schedule: psk %d: %w", i, err)
		}
		secret = s.Extract(input, secret)
		clear(input)
	}
	return secret, nil
}
