package storage

// RefreshToken is the stored form of one refresh token (only its hash).
type RefreshToken struct {
	Hash      []byte
	DeviceID  string
	Family    []byte
	ExpiresMs int64
	CreatedMs int64
	RotatedMs int64 // 0 while current
}

// InsertRefreshToken stores a new token of a rotation chain.
func (t *Tx) InsertRefreshToken(rt *RefreshToken) error {
	_, err := t.exec(`INSERT INTO refresh_tokens(hash, device_id, family, expires_ms, created_ms) VALUES (?, ?, ?, ?, ?)`,
		rt.Hash, rt.DeviceID, rt.Family, rt.ExpiresMs, rt.CreatedMs)
	if isUnique(err) {
		return wrap("storage.InsertRefreshToken", ErrConflict)
	}
	return wrap("storage.InsertRefreshToken", err)
}

// RefreshTokenByHash looks a token up by its hash.
func (t *Tx) RefreshTokenByHash(hash []byte) (*RefreshToken, error) {
	rt := &RefreshToken{Hash: hash}
	err := t.row(`SELECT device_id, family, expires_ms, created_ms, COALESCE(rotated_ms, 0) FROM refresh_tokens WHERE hash = ?`,
		[]any{hash}, &rt.DeviceID, &rt.Family, &rt.ExpiresMs, &rt.CreatedMs, &rt.RotatedMs)
	if err != nil {
		return nil, wrap("storage.RefreshTokenByHash", err)
	}
	return rt, nil
}

// MarkRefreshRotated records that a token was replaced. It fails with
// ErrNotFound if the token was already rotated (a concurrent reuse).
func (t *Tx) MarkRefreshRotated(hash []byte, nowMs int64) error {
	return wrap("storage.MarkRefreshRotated", affected(t.exec(
		`UPDATE refresh_tokens SET rotated_ms = ? WHERE hash = ? AND rotated_ms IS NULL`, nowMs, hash)))
}

// DeleteRefreshFamily deletes every token of one rotation chain.
func (t *Tx) DeleteRefreshFamily(family []byte) error {
	_, err := t.exec(`DELETE FROM refresh_tokens WHERE family = ?`, family)
	return wrap("storage.DeleteRefreshFamily", err)
}

// SetTokensAfter makes every access token of the device issued before ms invalid.
func (t *Tx) SetTokensAfter(deviceID string, ms int64) error {
	_, err := t.exec(`UPDATE devices SET tokens_after_ms = MAX(tokens_after_ms, ?) WHERE id = ?`, ms, deviceID)
	return wrap("storage.SetTokensAfter", err)
}

// DeleteExpiredRefreshTokens removes tokens past their expiry.
func (t *Tx) DeleteExpiredRefreshTokens(nowMs int64) (int64, error) {
	res, err := t.exec(`DELETE FROM refresh_tokens WHERE expires_ms < ?`, nowMs)
	if err != nil {
		return 0, wrap("storage.DeleteExpiredRefreshTokens", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("storage.DeleteExpiredRefreshTokens", err)
}
