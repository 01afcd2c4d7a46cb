package storage

import "errors"

// FedServerKey is one of this server's federation signing keys. Seed is
// set only on the current key; retired keys keep their public half.
type FedServerKey struct {
	ID           string
	Public       []byte
	Seed         []byte // nil once retired
	ValidFromMs  int64
	ValidUntilMs int64 // 0: current, no end
}

// FedServerKeys lists the stored keys, oldest first.
func (t *Tx) FedServerKeys() ([]*FedServerKey, error) {
	const op = "storage.FedServerKeys"
	rows, err := t.query(`SELECT key_id, public_key, seed, valid_from_ms, valid_until_ms FROM fed_server_keys ORDER BY valid_from_ms, key_id`)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ks []*FedServerKey
	for rows.Next() {
		k := &FedServerKey{}
		if err := rows.Scan(&k.ID, &k.Public, &k.Seed, &k.ValidFromMs, &k.ValidUntilMs); err != nil {
			return nil, wrap(op, err)
		}
		ks = append(ks, k)
	}
	return ks, wrap(op, rows.Err())
}

// RotateFedServerKey retires old (its seed is dropped, valid until
// retireUntilMs) and makes next the current key, in one transaction.
func (t *Tx) RotateFedServerKey(old, next *FedServerKey, retireUntilMs int64) error {
	const op = "storage.RotateFedServerKey"
	if old == nil || next == nil || len(next.Seed) == 0 || old.ID == next.ID {
		return wrap(op, errors.New("rotation needs a retiring key and a different new key with its seed"))
	}
	if _, err := t.exec(`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES (?, ?, NULL, ?, ?)
		ON CONFLICT(key_id) DO UPDATE SET seed = NULL, valid_until_ms = excluded.valid_until_ms`,
		old.ID, old.Public, old.ValidFromMs, retireUntilMs); err != nil {
		return wrap(op, err)
	}
	_, err := t.exec(`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES (?, ?, ?, ?, 0)`,
		next.ID, next.Public, next.Seed, next.ValidFromMs)
	return wrap(op, err)
}
