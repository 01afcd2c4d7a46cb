package storage

import "errors"

// Queries for presence across servers (homeserver/fed_presence.go). A
// conversation id is LOCAL@HUB; a device address is USER@DOMAIN/DEVICE;
// roster rows with a NULL device_id are devices of other servers (the hub
// holds them; a follower's roster copy holds only its own devices).

// PresenceTargets returns where a local user's presence goes: the users of
// other servers on the rosters of conversations hubbed here (self) that
// hold one of the user's devices, and the hubs of the conversations
// hubbed elsewhere that do.
func (t *Tx) PresenceTargets(userID int64, self string) (remoteUsers []string, hubs []string, err error) {
	const op = "storage.PresenceTargets"
	remoteUsers, err = t.strings(op, `SELECT DISTINCT substr(m2.address, 1, instr(m2.address, '/') - 1)
		FROM devices d1 JOIN conversation_members m1 ON m1.device_id = d1.id
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		WHERE d1.user_id = ? AND m2.device_id IS NULL AND substr(m1.conv_id, instr(m1.conv_id, '@') + 1) = ?`, userID, self)
	if err != nil {
		return nil, nil, err
	}
	hubs, err = t.strings(op, `SELECT DISTINCT substr(m.conv_id, instr(m.conv_id, '@') + 1)
		FROM devices d JOIN conversation_members m ON m.device_id = d.id
		WHERE d.user_id = ? AND substr(m.conv_id, instr(m.conv_id, '@') + 1) <> ?`, userID, self)
	return remoteUsers, hubs, err
}

// UsersSharingHubbed returns the local users (ids) and the users of other
// servers (addresses) on the rosters of the conversations hubbed here
// (self) that hold a device of user (an address of another server).
func (t *Tx) UsersSharingHubbed(user, self string) (local []int64, remote []string, err error) {
	const op = "storage.UsersSharingHubbed"
	prefix := user + "/"
	rows, err := t.query(`SELECT DISTINCT d.user_id FROM conversation_members m1
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		JOIN devices d ON d.id = m2.device_id
		WHERE substr(m1.address, 1, length(?1)) = ?1 AND substr(m1.conv_id, instr(m1.conv_id, '@') + 1) = ?2`, prefix, self)
	if err != nil {
		return nil, nil, wrap(op, err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nil, wrap(op, err)
		}
		local = append(local, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, wrap(op, err)
	}
	remote, err = t.strings(op, `SELECT DISTINCT substr(m2.address, 1, instr(m2.address, '/') - 1) FROM conversation_members m1
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		WHERE substr(m1.address, 1, length(?1)) = ?1 AND substr(m1.conv_id, instr(m1.conv_id, '@') + 1) = ?2
		AND m2.device_id IS NULL AND substr(m2.address, 1, length(?1)) <> ?1`, prefix, self)
	return local, remote, err
}

// UserInConversationOf reports whether the local user (by name) has a
// device on the roster of a conversation hubbed at hub, and returns its id.
func (t *Tx) UserInConversationOf(name, hub string) (int64, bool, error) {
	const op = "storage.UserInConversationOf"
	var id int64
	err := t.row(`SELECT u.id FROM users u JOIN devices d ON d.user_id = u.id
		JOIN conversation_members m ON m.device_id = d.id
		WHERE u.name = ? AND substr(m.conv_id, instr(m.conv_id, '@') + 1) = ? LIMIT 1`, []any{name, hub}, &id)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, wrap(op, err)
	}
	return id, true, nil
}

// strings runs a query of one text column.
func (t *Tx) strings(op, query string, args ...any) ([]string, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, s)
	}
	return out, wrap(op, rows.Err())
}
