package homeserver

import (
	"errors"
	"slices"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Devices an admin revokes (Server.DeviceRevoke) stay on the user's signed
// device list: only the user's own devices hold the identity key that signs
// it. Until a device of the user publishes the list without them, other
// users' clients keep them in their conversations. The server therefore
// names them to the user's devices: in HelloOK.revoked_listed at every
// connection, and in a DevicesChanged push to the sessions online when the
// admin revokes.

// revokedListed returns the user's devices that are on its signed list but
// revoked here. It runs at every Hello: the list is read and parsed only
// when the user has a revoked device at all.
func revokedListed(tx *storage.Tx, userID int64) ([]string, error) {
	devs, err := tx.Devices(userID)
	if err != nil {
		return nil, err
	}
	var revoked []string
	for _, d := range devs {
		if d.Status == storage.DeviceRevoked {
			revoked = append(revoked, d.ID)
		}
	}
	if len(revoked) == 0 {
		return nil, nil
	}
	sl, err := tx.DeviceList(userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	l, err := identity.UnmarshalDeviceList(sl.List)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(revoked, func(id string) bool { _, listed := l.Lookup(id); return !listed }), nil
}

// tellRevokedListed pushes DevicesChanged to the user's online active
// sessions (lossy; HelloOK repeats it at the next connection).
func (r *registry) tellRevokedListed(userID int64, ids []string) {
	if len(ids) == 0 {
		return
	}
	ev := &wire.ServerFrame{Body: &wire.ServerFrame_DevicesChanged{DevicesChanged: &wire.DevicesChanged{RevokedListed: ids}}}
	for _, o := range r.sessionsOfUsers([]int64{userID}) {
		if o.status.Load() == int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE) {
			o.pushEphemeral(ev)
		}
	}
}
