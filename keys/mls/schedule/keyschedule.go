package schedule

import (
	"errors"
	"fmt"

	"hearth/keys/mls/suite"
)

// Errors returned by this package.
var (
	ErrInput    = errors.New("mls schedule: invalid input")
	ErrTooOld   = errors.New("mls schedule: generation too old (key already used or discarded)")
	ErrTooFar   = errors.New("mls schedule: generation too far ahead")
	ErrLeaf     = errors.New("mls schedule: leaf index out of range")
	ErrEncoding = errors.New("mls schedule: malformed state")
)

// Epoch holds the secrets of one epoch (RFC 9420 §8, Table 4). Each
// field is Nh bytes.
type Epoch struct {
	Suite              suite.ID
	JoinerSecret       []byte
	WelcomeSecret      []byte
	EpochSecret        []byte
	SenderDataSecret   []byte
	EncryptionSecret   []byte
	ExporterSecret     []byte
	ExternalSecret     []byte
	ConfirmationKey    []byte
	MembershipKey      []byte
	ResumptionPSK      []byte
	EpochAuthenticator []byte
	// InitSecret is the init_secret for the next epoch.
	InitSecret []byte
}

// Joiner computes joiner_secret from the previous init_secret, the
// commit_secret and the new epoch's encoded GroupContext. A nil
// commitSecret means the all-zero commit secret (a Commit without path).
func Joiner(s *suite.Suite, initSecret, commitSecret, groupContext []byte) ([]byte, error) {
	if len(initSecret) != s.Nh() {
		return nil, fmt.Errorf("%w: init_secret is %d bytes, want %d", ErrInput, len(initSecret), s.Nh())
	}
	if commitSecret == nil {
		commitSecret = make([]byte, s.Nh())
	}
	js, err := s.ExpandWithLabel(s.Extract(initSecret, commitSecret), "joiner", groupContext, s.Nh())
	if err != nil {
		return nil, fmt.Errorf("mls schedule: joiner secret: %w", err)
	}
	return js, nil
}

// NewEpoch runs the key schedule for a member moving to a new epoch. A
// nil pskSecret means no PSKs (the all-zero psk_secret).
func NewEpoch(s *suite.Suite, initSecret, commitSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	js, err := Joiner(s, initSecret, commitSecret, groupContext)
	if err != nil {
		return nil, err
	}
	return FromJoiner(s, js, pskSecret, groupContext)
}

// FromJoiner runs the key schedule from joiner_secret, as a new member
// does after decrypting a Welcome.
func FromJoiner(s *suite.Suite, joinerSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	if len(joinerSecret) != s.Nh() {
		return nil, fmt.Errorf("%w: joiner_secret is %d bytes, want %d", ErrInput, len(joinerSecret), s.Nh())
	}
	if pskSecret == nil {
		pskSecret = make([]byte, s.Nh())
	}
	member := s.Extract(joinerSecret, pskSecret)
	e := &Epoch{Suite: s.ID(), JoinerSecret: clone(joinerSecret)}
	var err error
	if e.WelcomeSecret, err = s.DeriveSecret(member, "welcome"); err != nil {
		return nil, fmt.Errorf("mls schedule: welcome secret: %w", err)
	}
	if e.EpochSecret, err = s.ExpandWithLabel(member, "epoch", groupContext, s.Nh()); err != nil {
		return nil, fmt.Errorf("mls schedule: epoch secret: %w", err)
	}
	clear(member)
	for _, d := range []struct {
		dst   *[]byte
		label string
	}{
		{&e.SenderDataSecret, "sender data"},
		{&e.EncryptionSecret, "encryption"},
		{&e.ExporterSecret, "exporter"},
		{&e.ExternalSecret, "external"},
		{&e.ConfirmationKey, "confirm"},
		{&e.MembershipKey, "membership"},
		{&e.ResumptionPSK, "resumption"},
		{&e.EpochAuthenticator, "authentication"},
		{&e.InitSecret, "init"},
	} {
		if *d.dst, err = s.DeriveSecret(e.EpochSecret, d.label); err != nil {
			return nil, fmt.Errorf("mls schedule: %s secret: %w", d.label, err)
		}
	}
	return e, nil
}

func (e *Epoch) suite() (*suite.Suite, error) {
	s, err := suite.Lookup(e.Suite)
	if err != nil {
		return nil, fmt.Errorf("mls schedule: epoch: %w", err)
	}
	return s, nil
}

// Export is MLS-Exporter(label, context, length) (RFC 9420 §8.5).
func (e *Epoch) Export(label string, context []byte, length int) ([]byte, error) {
	s, err := e.suite()
	if err != nil {
		return nil, err
	}
	derived, err := s.DeriveSecret(e.ExporterSecret, label)
	if err != nil {
		return nil, fmt.Errorf("mls schedule: exporter: %w", err)
	}
	defer clear(derived)
	out, err := s.ExpandWithLabel(derived, "exported", s.Hash(context), length)
	if err != nil {
		return nil, fmt.Errorf("mls schedule: exporter: %w", err)
	}
	return out, nil
}

// ExternalKeyPair derives the epoch's external HPKE key pair from
// external_secret (RFC 9420 §8.3); external_pub goes in GroupInfo.
func (e *Epoch) ExternalKeyPair() (suite.HPKEPrivateKey, suite.HPKEPublicKey, error) {
	s, err := e.suite()
	if err != nil {
		return nil, nil, err
	}
	return s.DeriveKeyPair(e.ExternalSecret)
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash).
func (e *Epoch) ConfirmationTag(confirmedTranscriptHash []byte) ([]byte, error) {
	s, err := e.suite()
	if err != nil {
		return nil, err
	}
	return s.MAC(e.ConfirmationKey, confirmedTranscriptHash), nil
}

// VerifyConfirmationTag checks a confirmation tag in constant time.
func (e *Epoch) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) bool {
	s, err := e.suite()
	return err == nil && s.VerifyMAC(e.ConfirmationKey, confirmedTranscriptHash, tag)
}

// WelcomeKeyNonce derives the key and nonce that encrypt GroupInfo in a
// Welcome from welcome_secret (RFC 9420 §12.4.3.1).
func WelcomeKeyNonce(s *suite.Suite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = s.ExpandWithLabel(welcomeSecret, "key", nil, s.Nk()); err != nil {
		return nil, nil, fmt.Errorf("mls schedule: welcome key: %w", err)
	}
	if nonce, err = s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.Nn()); err != nil {
		return nil, nil, fmt.Errorf("mls schedule: welcome nonce: %w", err)
	}
	return key, nonce, nil
}

const externalInitLabel = "MLS 1.0 external init secret"

// ExternalInit is the joiner's side of an external commit (RFC 9420 §8.3):
// it encapsulates to the group's external_pub and returns the kem_output
// for the ExternalInit proposal and the init_secret to use.
func ExternalInit(s *suite.Suite, externalPub suite.HPKEPublicKey) (kemOutput, initSecret []byte, err error) {
	kemOutput, initSecret, err = s.ExportBaseS(externalPub, nil, externalInitLabel, s.Nh())
	if err != nil {
		return nil, nil, fmt.Errorf("mls schedule: external init: %w", err)
	}
	return kemOutput, initSecret, nil
}

// ExternalInitSecret is the members' side of ExternalInit: it recovers
// init_secret from kem_output with the epoch's external private key.
func (e *Epoch) ExternalInitSecret(kemOutput []byte) ([]byte, error) {
	s, err := e.suite()
	if err != nil {
		return nil, err
	}
	priv, _, err := e.ExternalKeyPair()
	if err != nil {
		return nil, err
	}
	sec, err := s.ExportBaseR(priv, kemOutput, nil, externalInitLabel, s.Nh())
	if err != nil {
		return nil, fmt.Errorf("mls schedule: external init: %w", err)
	}
	return sec, nil
}

// DropJoinerSecrets deletes joiner_secret, welcome_secret and
// epoch_secret. Call it once the epoch's Welcome messages are built (or
// right away for a member who did not commit): everything later derived
// comes from the other secrets, and dropping these keeps saved state from
// re-deriving the epoch.
func (e *Epoch) DropJoinerSecrets() {
	for _, f := range []*[]byte{&e.JoinerSecret, &e.WelcomeSecret, &e.EpochSecret} {
		clear(*f)
		*f = nil
	}
}

// Clear zeroes every secret of the epoch, for when the epoch is left.
func (e *Epoch) Clear() {
	for _, f := range e.fields() {
		clear(*f)
		*f = nil
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
