package storage

import (
	"database/sql"
	"errors"
	"fmt"
)

// ErrInviteUnusable is returned by ConsumeInvite for an invite that exists
// but is revoked, expired or used up; the returned Invite says which.
var ErrInviteUnusable = errors.New("storage: invite unusable")

// Invite is one admin-issued invite code. The code itself is never stored:
// CodeHash is its SHA-256, Prefix its first group (for listings).
type Invite struct {
	ID        int64
	CodeHash  []byte
	Prefix    string
	Uses      int // uses granted at creation
	UsesLeft  int
	ExpiresMs int64
	CreatedMs int64
	RevokedMs int64 // 0: not revoked
}

// Usable reports whether the invite can still create an account at nowMs.
func (i *Invite) Usable(nowMs int64) bool {
	return i.RevokedMs == 0 && i.UsesLeft > 0 && nowMs < i.ExpiresMs
}

// InsertInvite stores a new invite; ErrConflict if the hash exists.
func (t *Tx) InsertInvite(i *Invite) error {
	const op = "storage.InsertInvite"
	if i.Uses <= 0 || len(i.CodeHash) == 0 {
		return fmt.Errorf("%s: invite needs a code hash and at least one use", op)
	}
	res, err := t.exec(`INSERT INTO invites(code_hash, prefix, uses, uses_left, expires_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		i.CodeHash, i.Prefix, i.Uses, i.Uses, i.ExpiresMs, i.CreatedMs)
	if err != nil {
		if isUnique(err) {
			return wrap(op, ErrConflict)
		}
		return wrap(op, err)
	}
	i.UsesLeft = i.Uses
	i.ID, err = res.LastInsertId()
	return wrap(op, err)
}

const inviteCols = `id, code_hash, prefix, uses, uses_left, expires_ms, created_ms, revoked_ms`

func scanInvite(sc interface{ Scan(...any) error }) (*Invite, error) {
	i := &Invite{}
	if err := sc.Scan(&i.ID, &i.CodeHash, &i.Prefix, &i.Uses, &i.UsesLeft, &i.ExpiresMs, &i.CreatedMs, &i.RevokedMs); err != nil {
		return nil, err
	}
	return i, nil
}

// InviteByHash returns the invite whose code hashes to hash.
func (t *Tx) InviteByHash(hash []byte) (*Invite, error) {
	s, err := t.prep(`SELECT ` + inviteCols + ` FROM invites WHERE code_hash = ?`)
	if err != nil {
		return nil, wrap("storage.InviteByHash", err)
	}
	i, err := scanInvite(s.QueryRowContext(t.ctx, hash))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return i, wrap("storage.InviteByHash", err)
}

// Invites lists every invite, newest first.
func (t *Tx) Invites() ([]*Invite, error) {
	rows, err := t.query(`SELECT ` + inviteCols + ` FROM invites ORDER BY created_ms DESC, id DESC`)
	if err != nil {
		return nil, wrap("storage.Invites", err)
	}
	defer rows.Close()
	var out []*Invite
	for rows.Next() {
		i, err := scanInvite(rows)
		if err != nil {
			return nil, wrap("storage.Invites", err)
		}
		out = append(out, i)
	}
	return out, wrap("storage.Invites", rows.Err())
}

// ConsumeInvite takes one use of the invite whose code hashes to hash:
// ErrNotFound if there is none, ErrInviteUnusable (with the invite) if it is
// revoked, expired or used up at nowMs. Run it in the same Write as the
// account it pays for, so that a failed account creation gives the use back.
func (t *Tx) ConsumeInvite(hash []byte, nowMs int64) (*Invite, error) {
	const op = "storage.ConsumeInvite"
	i, err := t.InviteByHash(hash)
	if err != nil {
		return nil, err
	}
	if !i.Usable(nowMs) {
		return i, wrap(op, ErrInviteUnusable)
	}
	if err := affected(t.exec(`UPDATE invites SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0`, i.ID)); err != nil {
		return nil, wrap(op, err)
	}
	i.UsesLeft--
	return i, nil
}

// RevokeInvite marks an invite revoked by id; ErrNotFound if there is no
// such invite or it is already revoked.
func (t *Tx) RevokeInvite(id, nowMs int64) error {
	return wrap("storage.RevokeInvite", affected(t.exec(
		`UPDATE invites SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0`, max(nowMs, 1), id)))
}
