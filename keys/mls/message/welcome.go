package message

import (
	"bytes"
	"fmt"

	"hearth/keys/mls/schedule"
	"hearth/keys/mls/suite"
)

// labelWelcome is the EncryptWithLabel label of GroupSecrets.
const labelWelcome = "Welcome"

// welcomeKeyNonce derives the GroupInfo encryption key and nonce from
// joiner_secret and psk_secret (nil: no PSKs) (RFC 9420 §12.4.3.1).
func welcomeKeyNonce(s *suite.Suite, joinerSecret, pskSecret []byte) (key, nonce []byte, err error) {
	// welcome_secret does not depend on the GroupContext.
	e, err := schedule.FromJoiner(s, joinerSecret, pskSecret, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: welcome secret: %w", err)
	}
	return schedule.WelcomeKeyNonce(s, e.WelcomeSecret)
}

// WelcomeMember is one recipient of a Welcome.
type WelcomeMember struct {
	KeyPackage *KeyPackage
	// PathSecret is the committer's path secret for the lowest common
	// ancestor of its leaf and the new member's (nil without an UpdatePath).
	PathSecret []byte
}

// SealWelcome builds a Welcome for members (RFC 9420 §12.4.3.1): the
// signed GroupInfo encrypted under the welcome key, and GroupSecrets
// {joinerSecret, path secret, psks} encrypted to each KeyPackage's init
// key. pskSecret is the psk_secret the psks produce (nil for none).
func SealWelcome(s *suite.Suite, gi *GroupInfo, joinerSecret, pskSecret []byte, psks []PreSharedKeyID,
	members []WelcomeMember) (*Welcome, error) {
	key, nonce, err := welcomeKeyNonce(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	egi, err := s.Seal(key, nonce, nil, gi.Marshal())
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt group info: %w", err)
	}
	w := &Welcome{CipherSuite: s.ID(), EncryptedGroupInfo: egi}
	for _, m := range members {
		gs := GroupSecrets{JoinerSecret: joinerSecret, PathSecret: m.PathSecret, PSKs: psks}
		ct, err := s.EncryptWithLabel(m.KeyPackage.InitKey, labelWelcome, egi, gs.Marshal())
		if err != nil {
			return nil, fmt.Errorf("mls: encrypt group secrets: %w", err)
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{NewMember: m.KeyPackage.Ref(s), EncryptedGroupSecrets: ct})
	}
	return w, nil
}

// OpenGroupSecrets finds the entry of w addressed to kp and decrypts it
// with initPriv, the private key of kp.InitKey.
func OpenGroupSecrets(s *suite.Suite, w *Welcome, kp *KeyPackage, initPriv suite.HPKEPrivateKey) (*GroupSecrets, error) {
	if w.CipherSuite != s.ID() || kp.CipherSuite != s.ID() {
		return nil, fmt.Errorf("%w: welcome suite %v, key package %v, want %v", ErrMalformed, w.CipherSuite, kp.CipherSuite, s.ID())
	}
	ref := kp.Ref(s)
	for _, e := range w.Secrets {
		if !bytes.Equal(e.NewMember, ref) {
			continue
		}
		pt, err := s.DecryptWithLabel(initPriv, labelWelcome, w.EncryptedGroupInfo, e.EncryptedGroupSecrets)
		if err != nil {
			return nil, fmt.Errorf("mls: decrypt group secrets: %w", err)
		}
		gs := new(GroupSecrets)
		if err := gs.Unmarshal(pt); err != nil {
			return nil, err
		}
		if len(gs.JoinerSecret) != s.Nh() {
			return nil, fmt.Errorf("%w: joiner secret is %d bytes", ErrMalformed, len(gs.JoinerSecret))
		}
		return gs, nil
	}
	return nil, fmt.Errorf("%w: welcome has no entry for this key package", ErrMalformed)
}

// OpenGroupInfo decrypts the GroupInfo of w with the key derived from
// joinerSecret and pskSecret (nil for no PSKs). The caller verifies its
// signature (GroupInfo.Verify) with the key of leaf GroupInfo.Signer.
func OpenGroupInfo(s *suite.Suite, w *Welcome, joinerSecret, pskSecret []byte) (*GroupInfo, error) {
	key, nonce, err := welcomeKeyNonce(s, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	pt, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("mls: decrypt group info: %w", err)
	}
	gi := new(GroupInfo)
	if err := gi.Unmarshal(pt); err != nil {
		return nil, err
	}
	if gi.GroupContext.CipherSuite != s.ID() {
		return nil, fmt.Errorf("%w: group info suite %v, want %v", ErrMalformed, gi.GroupContext.CipherSuite, s.ID())
	}
	return gi, nil
}
