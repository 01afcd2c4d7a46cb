package storage

import (
	"database/sql"
	"errors"
)

// Device statuses, equal to wire.DeviceStatus numbers.
const (
	DevicePending = 1
	DeviceActive  = 2
	DeviceRevoked = 3
)

// User is one local account.
type User struct {
	ID        int64
	Name      string
	PassHash  string
	Admin     bool
	Disabled  bool
	CreatedMs int64
	Devices   int // active and pending devices (filled by Users)
}

// Device is one device of a local user.
type Device struct {
	ID            string
	UserID        int64
	UserName      string
	Name          string
	Status        int
	LinkPublicKey []byte
	SignatureKey  []byte // MLS signature public key the device registered at login
	SealedBundle  []byte
	TokensAfterMs int64
	CreatedMs     int64
	LastSeenMs    int64
}

func role(admin bool) string {
	if admin {
		return "admin"
	}
	return "user"
}

// InsertUser creates an account; ErrConflict if the name is taken.
func (t *Tx) InsertUser(u *User) error {
	res, err := t.exec(`INSERT INTO users(name, pass_hash, role, disabled, created_ms) VALUES (?, ?, ?, ?, ?)`,
		u.Name, u.PassHash, role(u.Admin), u.Disabled, u.CreatedMs)
	if err != nil {
		if isUnique(err) {
			return wrap("storage.InsertUser", ErrConflict)
		}
		return wrap("storage.InsertUser", err)
	}
	u.ID, err = res.LastInsertId()
	return wrap("storage.InsertUser", err)
}

const userCols = `id, name, pass_hash, role = 'admin', disabled, created_ms`

func scanUser(sc interface{ Scan(...any) error }) (*User, error) {
	u := &User{}
	if err := sc.Scan(&u.ID, &u.Name, &u.PassHash, &u.Admin, &u.Disabled, &u.CreatedMs); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return u, nil
}

// UserByName returns the account with that local name.
func (t *Tx) UserByName(name string) (*User, error) {
	s, err := t.prep(`SELECT ` + userCols + ` FROM users WHERE name = ?`)
	if err != nil {
		return nil, wrap("storage.UserByName", err)
	}
	u, err := scanUser(s.QueryRowContext(t.ctx, name))
	return u, wrap("storage.UserByName", err)
}

// UserByID returns the account with that id.
func (t *Tx) UserByID(id int64) (*User, error) {
	s, err := t.prep(`SELECT ` + userCols + ` FROM users WHERE id = ?`)
	if err != nil {
		return nil, wrap("storage.UserByID", err)
	}
	u, err := scanUser(s.QueryRowContext(t.ctx, id))
	return u, wrap("storage.UserByID", err)
}

// Users lists every account by name, with its count of live devices.
func (t *Tx) Users() ([]*User, error) {
	rows, err := t.query(`SELECT id, name, pass_hash, role = 'admin', disabled, created_ms,
		(SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id AND d.status IN (1, 2))
		FROM users u ORDER BY name`)
	if err != nil {
		return nil, wrap("storage.Users", err)
	}
	defer rows.Close()
	var us []*User
	for rows.Next() {
		u := &User{}
		if err := rows.Scan(&u.ID, &u.Name, &u.PassHash, &u.Admin, &u.Disabled, &u.CreatedMs, &u.Devices); err != nil {
			return nil, wrap("storage.Users", err)
		}
		us = append(us, u)
	}
	return us, wrap("storage.Users", rows.Err())
}

// CountUsers returns the number of accounts.
func (t *Tx) CountUsers() (int, error) {
	var n int
	err := t.row(`SELECT COUNT(*) FROM users`, nil, &n)
	return n, wrap("storage.CountUsers", err)
}

// SetUserDisabled sets or clears the disabled flag.
func (t *Tx) SetUserDisabled(id int64, disabled bool) error {
	return wrap("storage.SetUserDisabled", affected(t.exec(`UPDATE users SET disabled = ? WHERE id = ?`, disabled, id)))
}

// SetUserAdmin gives or takes the admin role.
func (t *Tx) SetUserAdmin(id int64, admin bool) error {
	return wrap("storage.SetUserAdmin", affected(t.exec(`UPDATE users SET role = ? WHERE id = ?`, role(admin), id)))
}

// SetPassHash replaces a user's password hash.
func (t *Tx) SetPassHash(id int64, hash string) error {
	return wrap("storage.SetPassHash", affected(t.exec(`UPDATE users SET pass_hash = ? WHERE id = ?`, hash, id)))
}

// DeleteUser removes an account and (by cascade) its devices, tokens, keys
// and mailboxes. Conversation rosters keep the device addresses (the MLS
// groups still hold them until a member commits their removal) but lose the
// link to the local device, so nothing more is queued for them.
func (t *Tx) DeleteUser(id int64) error {
	return wrap("storage.DeleteUser", affected(t.exec(`DELETE FROM users WHERE id = ?`, id)))
}

// InsertDevice creates a device and its empty mailbox.
func (t *Tx) InsertDevice(d *Device, linkToken []byte) error {
	var lt any
	if len(linkToken) > 0 {
		lt = linkToken
	}
	if _, err := t.exec(`INSERT INTO devices(id, user_id, name, status, link_token, link_public_key, signature_key, created_ms, last_seen_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.ID, d.UserID, d.Name, d.Status, lt, d.LinkPublicKey, nullIfEmpty(d.SignatureKey), d.CreatedMs, d.CreatedMs); err != nil {
		if isUnique(err) {
			return wrap("storage.InsertDevice", ErrConflict)
		}
		return wrap("storage.InsertDevice", err)
	}
	_, err := t.exec(`INSERT INTO mailbox_state(device_id, head, acked) VALUES (?, 0, 0)`, d.ID)
	return wrap("storage.InsertDevice", err)
}

const deviceCols = `d.id, d.user_id, u.name, d.name, d.status, d.link_public_key, d.signature_key, d.sealed_bundle, d.tokens_after_ms, d.created_ms, d.last_seen_ms`

func scanDevice(sc interface{ Scan(...any) error }) (*Device, error) {
	d := &Device{}
	if err := sc.Scan(&d.ID, &d.UserID, &d.UserName, &d.Name, &d.Status, &d.LinkPublicKey, &d.SignatureKey, &d.SealedBundle,
		&d.TokensAfterMs, &d.CreatedMs, &d.LastSeenMs); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return d, nil
}

// Device returns one device by id.
func (t *Tx) Device(id string) (*Device, error) {
	s, err := t.prep(`SELECT ` + deviceCols + ` FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = ?`)
	if err != nil {
		return nil, wrap("storage.Device", err)
	}
	d, err := scanDevice(s.QueryRowContext(t.ctx, id))
	return d, wrap("storage.Device", err)
}

// DeviceByLinkToken returns the pending device whose link token hash matches.
func (t *Tx) DeviceByLinkToken(hash []byte) (*Device, error) {
	s, err := t.prep(`SELECT ` + deviceCols + ` FROM devices d JOIN users u ON u.id = d.user_id WHERE d.link_token = ? AND d.status = 1`)
	if err != nil {
		return nil, wrap("storage.DeviceByLinkToken", err)
	}
	d, err := scanDevice(s.QueryRowContext(t.ctx, hash))
	return d, wrap("storage.DeviceByLinkToken", err)
}

// Devices lists a user's devices, oldest first.
func (t *Tx) Devices(userID int64) ([]*Device, error) {
	rows, err := t.query(`SELECT `+deviceCols+` FROM devices d JOIN users u ON u.id = d.user_id
		WHERE d.user_id = ? ORDER BY d.created_ms, d.id`, userID)
	if err != nil {
		return nil, wrap("storage.Devices", err)
	}
	defer rows.Close()
	var ds []*Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, wrap("storage.Devices", err)
		}
		ds = append(ds, d)
	}
	return ds, wrap("storage.Devices", rows.Err())
}

// CountLiveDevices returns how many pending or active devices a user has.
func (t *Tx) CountLiveDevices(userID int64) (int, error) {
	var n int
	err := t.row(`SELECT COUNT(*) FROM devices WHERE user_id = ? AND status IN (1, 2)`, []any{userID}, &n)
	return n, wrap("storage.CountLiveDevices", err)
}

// ApproveDevice marks a pending device active, stores the sealed bundle for
// it and forgets its link token. ErrNotFound if it is not pending.
func (t *Tx) ApproveDevice(id string, sealed []byte) error {
	return wrap("storage.ApproveDevice", affected(t.exec(
		`UPDATE devices SET status = 2, sealed_bundle = ?, link_token = NULL WHERE id = ? AND status = 1`, sealed, id)))
}

// ActivateDevice marks a pending device active without a bundle (the
// user's first device).
func (t *Tx) ActivateDevice(id string) error {
	return wrap("storage.ActivateDevice", affected(t.exec(
		`UPDATE devices SET status = 2, link_token = NULL WHERE id = ? AND status = 1`, id)))
}

// RevokeDevice marks a device revoked, kills its access tokens (issued
// before nowMs), deletes its refresh tokens, key packages and mailbox: a
// revoked device can never read again, so nothing more is queued for it.
func (t *Tx) RevokeDevice(id string, nowMs int64) error {
	const op = "storage.RevokeDevice"
	if err := affected(t.exec(`UPDATE devices SET status = 3, link_token = NULL, sealed_bundle = NULL,
		tokens_after_ms = ? WHERE id = ? AND status <> 3`, nowMs, id)); err != nil {
		return wrap(op, err)
	}
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE device_id = ?`,
		`DELETE FROM key_packages WHERE device_id = ?`,
		`DELETE FROM last_resort_packages WHERE device_id = ?`,
		`DELETE FROM mailbox WHERE device_id = ?`,
		`DELETE FROM mailbox_state WHERE device_id = ?`,
	} {
		if _, err := t.exec(q, id); err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// DeletePendingDevice deletes a device that is still pending (never
// approved) with what hangs on it (tokens, key packages, mailbox: the
// foreign keys cascade): a login that gave up waiting for approval leaves
// no trace. ErrNotFound if the device is not pending.
func (t *Tx) DeletePendingDevice(id string) error {
	return wrap("storage.DeletePendingDevice", affected(t.exec(`DELETE FROM devices WHERE id = ? AND status = 1`, id)))
}

// DeleteAbandonedPendingDevices deletes up to limit pending devices
// created before cutoffMs that hold no refresh token any more: their
// login gave up without withdrawing (the process was killed, the user
// never came back) and, their tokens expired and swept, they can neither
// resume nor fetch an approval. Their key packages, tokens and mailbox go
// with them (the foreign keys cascade).
func (t *Tx) DeleteAbandonedPendingDevices(cutoffMs int64, limit int) (int64, error) {
	const op = "storage.DeleteAbandonedPendingDevices"
	res, err := t.exec(`DELETE FROM devices WHERE id IN (
		SELECT d.id FROM devices d WHERE d.status = 1 AND d.created_ms < ?
		AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.device_id = d.id) LIMIT ?)`, cutoffMs, limit)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	return n, wrap(op, err)
}

// TouchDevice records that the device was seen.
func (t *Tx) TouchDevice(id string, nowMs int64) error {
	_, err := t.exec(`UPDATE devices SET last_seen_ms = ? WHERE id = ?`, nowMs, id)
	return wrap("storage.TouchDevice", err)
}
