package account

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// PendingDevice is a device waiting for approval, as the approving device
// shows it to the user before it approves (ApproveConfirm).
type PendingDevice struct {
	ID   string
	Name string // the name the new device gave itself (--device-name)
	// Fingerprint is KeyFingerprint of the device's signature key: the new
	// device prints the same text while it waits, for the user to compare.
	Fingerprint string
	// LinkFingerprint is the link code's second half, already checked
	// against the link key the server returned.
	LinkFingerprint string
}

// KeyFingerprint is a short text for a device's signature key: the first
// 100 bits of SHA-256("hearth device fingerprint v1" || key) in base32,
// in groups of four characters.
func KeyFingerprint(key ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("hearth device fingerprint v1"))
	h.Write(key)
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h.Sum(nil)[:13])[:20]
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// Fingerprint returns KeyFingerprint of this device's signature key.
func (m *Manager) Fingerprint() (string, error) {
	self, err := m.Self()
	if err != nil {
		return "", err
	}
	return KeyFingerprint(self.SignatureKey.Public().(ed25519.PublicKey)), nil
}

// ApproveConfirm is Approve that first shows the pending device to confirm
// (when confirm is not nil): it runs after the device's link key was
// checked against the code, and an error from it approves nothing.
func (m *Manager) ApproveConfirm(ctx context.Context, code string, confirm func(PendingDevice) error) (deviceID string, err error) {
	return m.ApproveWith(ctx, code, ApproveOptions{Confirm: confirm})
}

// ApproveOptions are the optional steps of ApproveWith.
type ApproveOptions struct {
	// Confirm, when set, is shown the pending device once its link key
	// matched the code; an error approves nothing.
	Confirm func(PendingDevice) error
	// History, when set, runs after Confirm and returns the reference to
	// an archive for the new device, sealed with the identity key to the
	// device's link key (identity.Bundle.History); an error approves
	// nothing.
	History func(ctx context.Context, dev PendingDevice) ([]byte, error)
}

// ApproveWith approves a pending device as Approve does, with opts.
func (m *Manager) ApproveWith(ctx context.Context, code string, opts ApproveOptions) (deviceID string, err error) {
	const op = "client.Approve"
	token, fp, err := identity.ParseLinkCode(code)
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	ik, a, err := m.identityKey()
	if err != nil {
		return "", err
	}
	r, err := m.cfg.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: token}}})
	if err != nil {
		return "", err
	}
	return m.approvePending(ctx, r.GetPendingDevice(), ik, a, fp, opts)
}
