package storage

// SignedList is a stored device list: the exact signed bytes and signature.
type SignedList struct {
	Version   uint64
	List      []byte
	Signature []byte
	UpdatedMs int64
}

// IdentityKey returns the user's identity public key.
func (t *Tx) IdentityKey(userID int64) ([]byte, error) {
	var k []byte
	err := t.row(`SELECT public_key FROM identity_keys WHERE user_id = ?`, []any{userID}, &k)
	return k, wrap("storage.IdentityKey", err)
}

// InsertIdentityKey registers the identity key once; ErrConflict after that.
func (t *Tx) InsertIdentityKey(userID int64, pub []byte, nowMs int64) error {
	_, err := t.exec(`INSERT INTO identity_keys(user_id, public_key, created_ms) VALUES (?, ?, ?)`, userID, pub, nowMs)
	if isUnique(err) {
		return wrap("storage.InsertIdentityKey", ErrConflict)
	}
	return wrap("storage.InsertIdentityKey", err)
}

// DeviceList returns the user's current signed device list.
func (t *Tx) DeviceList(userID int64) (*SignedList, error) {
	l := &SignedList{}
	err := t.row(`SELECT version, list, signature, updated_ms FROM device_lists WHERE user_id = ?`,
		[]any{userID}, &l.Version, &l.List, &l.Signature, &l.UpdatedMs)
	if err != nil {
		return nil, wrap("storage.DeviceList", err)
	}
	return l, nil
}

// PutDeviceList stores a new list. It fails with ErrConflict unless the
// version is greater than the stored one (versions only grow).
func (t *Tx) PutDeviceList(userID int64, l *SignedList) error {
	res, err := t.exec(`INSERT INTO device_lists(user_id, version, list, signature, updated_ms) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(user_id) DO UPDATE SET version = excluded.version, list = excluded.list,
			signature = excluded.signature, updated_ms = excluded.updated_ms
		WHERE excluded.version > device_lists.version`, userID, l.Version, l.List, l.Signature, l.UpdatedMs)
	if err := affected(res, err); err == ErrNotFound {
		return wrap("storage.PutDeviceList", ErrConflict)
	} else if err != nil {
		return wrap("storage.PutDeviceList", err)
	}
	return nil
}

// AddKeyPackages appends single-use packages for a device and, when
// lastResort is non-empty, replaces its last-resort package.
func (t *Tx) AddKeyPackages(deviceID string, pkgs [][]byte, lastResort []byte, nowMs int64) error {
	for _, p := range pkgs {
		if _, err := t.exec(`INSERT INTO key_packages(device_id, data, created_ms) VALUES (?, ?, ?)`, deviceID, p, nowMs); err != nil {
			return wrap("storage.AddKeyPackages", err)
		}
	}
	if len(lastResort) > 0 {
		if _, err := t.exec(`INSERT INTO last_resort_packages(device_id, data, updated_ms) VALUES (?, ?, ?)
			ON CONFLICT(device_id) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms`,
			deviceID, lastResort, nowMs); err != nil {
			return wrap("storage.AddKeyPackages", err)
		}
	}
	return nil
}

// CountKeyPackages returns how many single-use packages a device has left.
func (t *Tx) CountKeyPackages(deviceID string) (int, error) {
	var n int
	err := t.row(`SELECT COUNT(*) FROM key_packages WHERE device_id = ?`, []any{deviceID}, &n)
	return n, wrap("storage.CountKeyPackages", err)
}

// LastResortKeyPackage returns the device's last-resort package (kept);
// ErrNotFound when it has none.
func (t *Tx) LastResortKeyPackage(deviceID string) ([]byte, error) {
	var pkg []byte
	err := t.row(`SELECT data FROM last_resort_packages WHERE device_id = ?`, []any{deviceID}, &pkg)
	return pkg, wrap("storage.LastResortKeyPackage", err)
}

// ClaimKeyPackage removes and returns the device's oldest single-use
// package, or returns its last-resort package (kept) when none is left.
// ErrNotFound when the device has neither.
func (t *Tx) ClaimKeyPackage(deviceID string) (pkg []byte, lastResort bool, err error) {
	const op = "storage.ClaimKeyPackage"
	err = t.row(`DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE device_id = ? ORDER BY id LIMIT 1) RETURNING data`,
		[]any{deviceID}, &pkg)
	if err == nil {
		return pkg, false, nil
	}
	if err != ErrNotFound {
		return nil, false, wrap(op, err)
	}
	err = t.row(`SELECT data FROM last_resort_packages WHERE device_id = ?`, []any{deviceID}, &pkg)
	if err != nil {
		return nil, false, wrap(op, err)
	}
	return pkg, true, nil
}
