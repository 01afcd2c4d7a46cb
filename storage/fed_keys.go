package storage

import (
	"context"
	"errors"
	"fmt"
)

// FedServerKey is one of this server's federation signing keys: its
// public half and validity. The private halves live in files outside the
// database (homeserver/fedlink, docs/security.md).
type FedServerKey struct {
	ID           string
	Public       []byte
	ValidFromMs  int64
	ValidUntilMs int64 // 0: current, no end
}

// FedServerKeys lists the stored keys, oldest first.
func (t *Tx) FedServerKeys() ([]*FedServerKey, error) {
	const op = "storage.FedServerKeys"
	return t.publicKeys(op, `SELECT key_id, public_key, valid_from_ms, valid_until_ms FROM fed_server_keys ORDER BY valid_from_ms, key_id`)
}

func (t *Tx) publicKeys(op, q string) ([]*FedServerKey, error) {
	rows, err := t.query(q)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ks []*FedServerKey
	for rows.Next() {
		k := &FedServerKey{}
		if err := rows.Scan(&k.ID, &k.Public, &k.ValidFromMs, &k.ValidUntilMs); err != nil {
			return nil, wrap(op, err)
		}
		ks = append(ks, k)
	}
	return ks, wrap(op, rows.Err())
}

// RotateFedServerKey retires old (valid until retireUntilMs) and makes
// next the current key, in one transaction. Only public keys are stored.
func (t *Tx) RotateFedServerKey(old, next *FedServerKey, retireUntilMs int64) error {
	const op = "storage.RotateFedServerKey"
	return wrap(op, t.rotateKey("fed_server_keys", old, next, retireUntilMs))
}

func (t *Tx) rotateKey(table string, old, next *FedServerKey, retireUntilMs int64) error {
	if old == nil || next == nil || len(next.Public) == 0 || old.ID == next.ID {
		return errors.New("rotation needs a retiring key and a different new key")
	}
	if _, err := t.exec(`INSERT INTO `+table+`(key_id, public_key, valid_from_ms, valid_until_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT(key_id) DO UPDATE SET valid_until_ms = excluded.valid_until_ms`,
		old.ID, old.Public, old.ValidFromMs, retireUntilMs); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO `+table+`(key_id, public_key, valid_from_ms, valid_until_ms) VALUES (?, ?, ?, 0)`,
		next.ID, next.Public, next.ValidFromMs)
	return err
}

// TokenKeys lists the access-token signing keys known to the database
// (public halves; valid_until_ms 0 is the current key), oldest first.
func (t *Tx) TokenKeys() ([]*FedServerKey, error) {
	const op = "storage.TokenKeys"
	return t.publicKeys(op, `SELECT key_id, public_key, valid_from_ms, valid_until_ms FROM token_keys ORDER BY valid_from_ms, key_id`)
}

// RotateTokenKey retires the access-token key old (tokens it signed are
// accepted until retireUntilMs) and makes next current.
func (t *Tx) RotateTokenKey(old, next *FedServerKey, retireUntilMs int64) error {
	const op = "storage.RotateTokenKey"
	return wrap(op, t.rotateKey("token_keys", old, next, retireUntilMs))
}

// ErrCheckpointBusy is MoveFedKeySeeds' report that the seeds were moved
// and wiped but a reader kept the WAL from being truncated: a copy may stay
// in hearth.db-wal until SQLite's next checkpoint overwrites it.
var ErrCheckpointBusy = errors.New("WAL checkpoint was blocked by a reader")

// MoveFedKeySeeds moves private federation key seeds out of the database,
// where versions before 0012 kept the current key's seed: keep is called
// with each stored seed (it writes the seed to a 0600 file and syncs it),
// then every seed is wiped. The wipe runs with secure_delete (freed bytes
// are zeroed), the database is vacuumed (seeds of keys retired earlier may
// linger in free pages) and the WAL is checkpointed and truncated, so no
// copy of a seed stays in hearth.db or hearth.db-wal. It returns how many
// seeds it moved; with none stored it changes nothing. Call it before
// traffic starts: it holds the writer's connection throughout.
func (db *DB) MoveFedKeySeeds(ctx context.Context, keep func(keyID string, seed []byte) error) (int, error) {
	const op = "storage.MoveFedKeySeeds"
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return 0, wrap(op, err)
	}
	defer conn.Close()
	type seedRow struct {
		id   string
		seed []byte
	}
	var seeds []seedRow
	rows, err := conn.QueryContext(ctx, `SELECT key_id, seed FROM fed_server_keys WHERE seed IS NOT NULL`)
	if err != nil {
		return 0, wrap(op, err)
	}
	for rows.Next() {
		var r seedRow
		if err := rows.Scan(&r.id, &r.seed); err != nil {
			rows.Close()
			return 0, wrap(op, err)
		}
		seeds = append(seeds, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, wrap(op, err)
	}
	if len(seeds) == 0 {
		return 0, nil
	}
	for _, r := range seeds {
		if err := keep(r.id, r.seed); err != nil {
			return 0, fmt.Errorf("%s: keep seed of %s: %w", op, r.id, err)
		}
	}
	for _, q := range []string{
		`PRAGMA secure_delete = ON`,
		`UPDATE fed_server_keys SET seed = NULL WHERE seed IS NOT NULL`,
		`VACUUM`,
		`PRAGMA secure_delete = OFF`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %s: %w", op, q, err)
		}
	}
	var busy, logFrames, done int
	if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return 0, wrap(op, err)
	}
	if busy != 0 {
		return len(seeds), fmt.Errorf("%s: %w", op, ErrCheckpointBusy)
	}
	return len(seeds), nil
}
