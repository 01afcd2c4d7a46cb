package account

import (
	"context"
	"fmt"

	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Withdraw removes this pending device: the server deletes it (it was
// never approved, so no list names it) and the profile forgets the login,
// so that the next Login starts afresh with a new device. It refuses a
// device that is already active; a device the server no longer knows is
// forgotten here all the same.
func (m *Manager) Withdraw(ctx context.Context) error {
	const op = "client.Withdraw"
	a, err := m.Account()
	if err != nil {
		return err
	}
	if a.Active {
		return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device %s is already approved and active", a.DeviceID)
	}
	// One last look: an approval that came in meanwhile wins over the
	// withdrawal (the server would refuse to delete an active device).
	r, err := m.cfg.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}})
	if err != nil && !wire.Is(err, wire.Code_CODE_NOT_FOUND) && !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
		return err
	}
	if err == nil && len(r.GetApproval().GetSealedBundle()) > 0 {
		return wire.Errorf(op, wire.Code_CODE_CONFLICT, "device %s was approved meanwhile", a.DeviceID)
	}
	if err == nil {
		_, err = m.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_RevokeDevice{RevokeDevice: &wire.RevokeDevice{DeviceId: a.DeviceID}}})
		if err != nil && !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
			return err
		}
	}
	m.cfg.ResetSession()
	if err := m.forget(); err != nil {
		return fmt.Errorf("%s: the server removed device %s, but this profile could not forget it: %w", op, a.DeviceID, err)
	}
	return nil
}

// forget deletes the account and the device's keys from the profile.
func (m *Manager) forget() error {
	err := m.cfg.Store.Update(func(tx *store.Tx) error {
		for _, ref := range tx.KeyPackageRefs() {
			if err := tx.DeleteKeyPackage(ref); err != nil {
				return err
			}
		}
		for _, k := range []string{store.KeyLink, store.KeySignature, store.KeyIdentity, store.KeyRecoveryPending} {
			if err := tx.DeleteKey(k); err != nil {
				return err
			}
		}
		return tx.DeleteAccount()
	})
	if err != nil {
		return err
	}
	return m.cfg.Store.Compact() // no copy of the removed keys stays in free pages
}
