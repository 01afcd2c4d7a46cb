package keydir

import (
	"context"
	"errors"
	"fmt"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Config is what the directory's rules depend on.
type Config struct {
	Domain         string
	MaxKeyPackages int // KeyPackages one device may store
}

// Propagate queues a user's new signed device list for the other servers
// that share a conversation with the user, in the transaction that
// stores it (fedlink.QueueDeviceList); nil without federation.
type Propagate func(tx *storage.Tx, userName string, userID int64, version uint64, sl *wire.SignedDeviceList) error

// Directory is the key directory of this server's users: identity keys,
// signed device lists (cached, listcache.go), devices and KeyPackages.
type Directory struct {
	cfg       Config
	db        *storage.DB
	now       func() time.Time
	lists     *listCache
	propagate Propagate
}

// New returns the directory over db.
func New(cfg Config, db *storage.DB, now func() time.Time, propagate Propagate) *Directory {
	return &Directory{cfg: cfg, db: db, now: now, lists: newListCache(), propagate: propagate}
}

// Caller is the authenticated device a request comes from.
type Caller struct {
	UserName string
	UserID   int64
	DeviceID string
	Active   bool // the device is approved (not pending)
}

// WriteUser runs a database write that may change user's signed list or
// identity key (deleting the user, say), keeping the list cache right.
func (s *Directory) WriteUser(ctx context.Context, userName string, fn func(*storage.Tx) error) error {
	return s.lists.write(ctx, s.db, userName, fn)
}

func (s *Directory) nowMs() int64                   { return s.now().UnixMilli() }
func (s *Directory) userAddress(name string) string { return name + "@" + s.cfg.Domain }
func (s *Directory) deviceAddress(name, deviceID string) string {
	return name + "@" + s.cfg.Domain + "/" + deviceID
}

func okFrame() *wire.ServerFrame {
	return &wire.ServerFrame{Body: &wire.ServerFrame_Ok{Ok: &wire.Empty{}}}
}

// verifyList checks a signed device list against the user's identity key
// and the rules every stored list obeys: it is this user's, it names the
// device that publishes it (mustList), and every listed device is one of
// the user's active devices, or allowPending (the device being approved).
// The server never edits a list: it stores only what the identity key signed.
func verifyList(op string, tx *storage.Tx, userAddr string, userID int64, idKey []byte, sl *wire.SignedDeviceList,
	mustList, allowPending string) (*identity.DeviceList, error) {
	if sl == nil || len(sl.List) == 0 || len(sl.Signature) == 0 {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "signed device list required")
	}
	pub, err := identity.ParsePublicKey(idKey)
	if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid identity key")
	}
	l, err := identity.VerifyDeviceList(pub, sl.List, sl.Signature)
	if errors.Is(err, identity.ErrSignature) {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "device list signature does not verify")
	} else if err != nil {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid device list: %v", err)
	}
	if l.User.String() != userAddr {
		return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list is for %s, not %s", l.User, userAddr)
	}
	if mustList != "" {
		if _, ok := l.Lookup(mustList); !ok {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list does not include device %s", mustList)
		}
	}
	for _, ld := range l.Devices {
		d, err := tx.Device(ld.DeviceID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserID != userID) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list names unknown device %s", ld.DeviceID)
		} else if err != nil {
			return nil, err
		}
		if d.Status != storage.DeviceActive && !(d.Status == storage.DevicePending && ld.DeviceID == allowPending) {
			return nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device list names device %s that is not active", ld.DeviceID)
		}
	}
	return l, nil
}

// putList stores a verified signed list whose version must grow and, with federation, queues it
// for every server sharing a conversation with the user (same transaction).
func (s *Directory) putList(op string, tx *storage.Tx, userName string, userID int64, l *identity.DeviceList, sl *wire.SignedDeviceList, nowMs int64) error {
	if !s.lists.inWrite(userName) {
		return fmt.Errorf("%s: list of %s written outside listCache.write (the list cache would go stale)", op, userName)
	}
	err := tx.PutDeviceList(userID, &storage.SignedList{Version: l.Version, List: sl.List, Signature: sl.Signature, UpdatedMs: nowMs})
	if errors.Is(err, storage.ErrConflict) {
		return wire.Errorf(op, wire.Code_CODE_VERSION, "device list version %d does not grow", l.Version)
	}
	if err != nil || s.propagate == nil {
		return err
	}
	return s.propagate(tx, userName, userID, l.Version, sl)
}

// listed reports whether a device is on the user's current signed list.
func listed(tx *storage.Tx, userID int64, deviceID string) (bool, error) {
	sl, err := tx.DeviceList(userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	l, err := identity.UnmarshalDeviceList(sl.List)
	if err != nil {
		return false, err
	}
	_, ok := l.Lookup(deviceID)
	return ok, nil
}
