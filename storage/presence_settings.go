package storage

import (
	"encoding/json"
	"errors"
)

// Queries for presence settings and last seen (homeserver/presence_query.go).

// LastSeen visibilities, as hearth.v1.LastSeenVisibility.
const (
	LastSeenEveryone = 1
	LastSeenContacts = 2
	LastSeenNobody   = 3
)

// PresenceSettings is a local user's presence record.
type PresenceSettings struct {
	LastSeen   int   // LastSeenEveryone, LastSeenContacts or LastSeenNobody
	LastSeenMs int64 // when the user's presence last changed; 0: never
}

// PresenceSettings returns a user's settings (the defaults when none are
// stored: everyone, never seen).
func (t *Tx) PresenceSettings(userID int64) (PresenceSettings, error) {
	const op = "storage.PresenceSettings"
	p := PresenceSettings{LastSeen: LastSeenEveryone}
	err := t.row(`SELECT last_seen, last_seen_ms FROM presence_settings WHERE user_id = ?`, []any{userID}, &p.LastSeen, &p.LastSeenMs)
	if errors.Is(err, ErrNotFound) {
		return p, nil
	}
	return p, wrap(op, err)
}

// SetLastSeenVisibility stores who may see the user's last seen (one of
// the LastSeen constants).
func (t *Tx) SetLastSeenVisibility(userID int64, v int) error {
	const op = "storage.SetLastSeenVisibility"
	if v < LastSeenEveryone || v > LastSeenNobody {
		return wrap(op, errors.New("last seen visibility out of range"))
	}
	_, err := t.exec(`INSERT INTO presence_settings(user_id, last_seen) VALUES (?, ?)
		ON CONFLICT(user_id) DO UPDATE SET last_seen = excluded.last_seen`, userID, v)
	return wrap(op, err)
}

// SetLastSeenMs records when the user's presence last changed; an older
// time than the one stored is ignored.
func (t *Tx) SetLastSeenMs(userID, ms int64) error {
	const op = "storage.SetLastSeenMs"
	_, err := t.exec(`INSERT INTO presence_settings(user_id, last_seen_ms) VALUES (?, ?)
		ON CONFLICT(user_id) DO UPDATE SET last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)`, userID, ms)
	return wrap(op, err)
}

// SharesConversation reports whether local users a and b both have a
// device on the roster of one conversation.
func (t *Tx) SharesConversation(a, b int64) (bool, error) {
	const op = "storage.SharesConversation"
	var n int
	err := t.row(`SELECT EXISTS (SELECT 1 FROM devices d1
		JOIN conversation_members m1 ON m1.device_id = d1.id
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		JOIN devices d2 ON d2.id = m2.device_id
		WHERE d1.user_id = ? AND d2.user_id = ?)`, []any{a, b}, &n)
	return n == 1, wrap(op, err)
}

// SharesHubbedConversation reports whether local user userID and remote,
// a user of another server, both have a device on the roster of a
// conversation hubbed here (self), where this server holds the whole
// roster. (A follower's copy of a conversation hubbed elsewhere holds its
// own devices only.)
func (t *Tx) SharesHubbedConversation(userID int64, remote, self string) (bool, error) {
	const op = "storage.SharesHubbedConversation"
	var n int
	err := t.row(`SELECT EXISTS (SELECT 1 FROM devices d
		JOIN conversation_members m1 ON m1.device_id = d.id
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		WHERE d.user_id = ?1 AND substr(m1.conv_id, instr(m1.conv_id, '@') + 1) = ?3
			AND m2.device_id IS NULL AND substr(m2.address, 1, length(?2) + 1) = ?2 || '/')`,
		[]any{userID, remote, self}, &n)
	return n == 1, wrap(op, err)
}

// InConversationHubbedAt reports whether local user userID has a device
// on the roster of a conversation hubbed at hub.
func (t *Tx) InConversationHubbedAt(userID int64, hub string) (bool, error) {
	const op = "storage.InConversationHubbedAt"
	var n int
	err := t.row(`SELECT EXISTS (SELECT 1 FROM devices d JOIN conversation_members m ON m.device_id = d.id
		WHERE d.user_id = ? AND substr(m.conv_id, instr(m.conv_id, '@') + 1) = ?)`, []any{userID, hub}, &n)
	return n == 1, wrap(op, err)
}

// PresencePeer is a local user sharing a conversation with another, with
// the peer's presence settings.
type PresencePeer struct {
	Peer
	Settings PresenceSettings
}

// PresencePeers is ConversationPeers with each peer's presence settings,
// in one query (a connect of a member of a large group reads it).
func (t *Tx) PresencePeers(userID int64) ([]PresencePeer, error) {
	const op = "storage.PresencePeers"
	rows, err := t.query(`SELECT u.id, u.name, coalesce(p.last_seen, 1), coalesce(p.last_seen_ms, 0) FROM users u
		LEFT JOIN presence_settings p ON p.user_id = u.id
		WHERE u.id IN (SELECT DISTINCT d2.user_id FROM devices d1
			JOIN conversation_members m1 ON m1.device_id = d1.id
			JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
			JOIN devices d2 ON d2.id = m2.device_id
			WHERE d1.user_id = ?)`, userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ps []PresencePeer
	for rows.Next() {
		var p PresencePeer
		if err := rows.Scan(&p.UserID, &p.Name, &p.Settings.LastSeen, &p.Settings.LastSeenMs); err != nil {
			return nil, wrap(op, err)
		}
		ps = append(ps, p)
	}
	return ps, wrap(op, rows.Err())
}

// HidingLastSeen returns which of the users ids hide their last seen
// (LastSeenNobody): they see nobody's. One statement for any number of
// ids (a JSON array), so the statement cache holds one query.
func (t *Tx) HidingLastSeen(ids []int64) (map[int64]bool, error) {
	const op = "storage.HidingLastSeen"
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, wrap(op, err)
	}
	rows, err := t.query(`SELECT user_id FROM presence_settings WHERE last_seen = 3 AND user_id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(op, err)
		}
		out[id] = true
	}
	return out, wrap(op, rows.Err())
}
