package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// The dedup records (migrations 0016, 0017): one row per accepted
// (sender, message id) in send_records, appended in id order, found
// through the narrow unique index on key = sendKey(sender, message id);
// every lookup compares the strings too, so two pairs with one key stay
// apart: the second pair's record waits in send_record_spill until the
// key is free.

// sendKey is the 63-bit key of (sender, messageID) under which the dedup
// record is indexed: the first bytes of a SHA-256 of both, so that no
// sender can choose message ids whose keys pile up on one value (each
// lookup reads the rows of its key). The SQL function hearth_send_key
// (registered on every connection, used by migration 0016) is the same.
func sendKey(sender, messageID string) int64 {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(sender)))])
	h.Write([]byte(sender))
	h.Write([]byte(messageID))
	var sum [sha256.Size]byte
	return int64(binary.BigEndian.Uint64(h.Sum(sum[:0])) >> 1)
}

// SendRecord returns the first result of (sender, messageID).
func (t *Tx) SendRecord(sender, messageID string) (*SendRecord, error) {
	r := &SendRecord{Sender: sender, MessageID: messageID}
	err := t.row(qSendRecord, []any{sendKey(sender, messageID), sender, messageID}, &r.ConvID, &r.ConvSeq, &r.Epoch, &r.CreatedMs)
	if err != nil {
		return nil, wrap("storage.SendRecord", err)
	}
	return r, nil
}

// InsertSendRecord stores the dedup record of an accepted message;
// ErrConflict if (sender, message id) has one.
func (t *Tx) InsertSendRecord(r *SendRecord) error {
	claimed, err := t.claimSendRecord(r)
	if err == nil && !claimed {
		err = ErrConflict
	}
	return wrap("storage.InsertSendRecord", err)
}

// ClaimSendRecord stores the dedup record of a message about to be
// accepted unless it has one: false (nothing written) when (sender, message id) has a record already. A caller that
// then refuses the message must roll the claim back with the rest of its
// work (its savepoint).
func (t *Tx) ClaimSendRecord(r *SendRecord) (bool, error) {
	claimed, err := t.claimSendRecord(r)
	return claimed, wrap("storage.ClaimSendRecord", err)
}

// claimSendRecord appends (sender, message id)'s record under its key
// unless the key is taken; only the writer writes, so nothing comes in
// between. A taken key is this pair's record (a retry: nothing written)
// or, by a hash collision, another pair's: then the record goes to the
// spill (migration 0017), unless the pair has one there already. A free
// key means the pair has no record: a key with records in the spill is
// always taken in send_records (the trigger send_records_unspill).
func (t *Tx) claimSendRecord(r *SendRecord) (bool, error) {
	key := sendKey(r.Sender, r.MessageID)
	args := []any{key, r.Sender, r.MessageID, r.ConvID, r.ConvSeq, r.Epoch, r.CreatedMs}
	res, err := t.exec(qInsertSendRecord, args...)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, err
	}
	var conv string
	var seq, epoch, created int64
	err = t.row(qSendRecord, args[:3], &conv, &seq, &epoch, &created)
	if err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if _, err := t.exec(qSpillSendRecord, args...); err != nil {
		return false, err
	}
	return true, nil
}

// DeleteSendRecords is one step of the dedup records' retention at time
// nowMs: it leaves a mark (how far the records go now) unless the last
// one is as far, then deletes, oldest first, up to limit records that
// were there at a mark left before cutoffMs. A record is thus deleted no
// sooner than the window (nowMs − cutoffMs) after it was written, and
// within the window and the time between two steps after. It returns how
// many records it deleted; limit of them means more may be due.
func (t *Tx) DeleteSendRecords(nowMs, cutoffMs int64, limit int) (int64, error) {
	const op = "storage.DeleteSendRecords"
	if _, err := t.exec(`INSERT INTO send_record_marks(upto, at_ms)
		SELECT MAX(id), ? FROM send_records HAVING MAX(id) > COALESCE((SELECT MAX(upto) FROM send_record_marks), 0)`, nowMs); err != nil {
		return 0, wrap(op, err)
	}
	var upto int64
	if err := t.row(`SELECT COALESCE(MAX(upto), 0) FROM send_record_marks WHERE at_ms < ?`, []any{cutoffMs}, &upto); err != nil {
		return 0, wrap(op, err)
	}
	if upto == 0 {
		return 0, nil
	}
	res, err := t.exec(`DELETE FROM send_records WHERE id IN (SELECT id FROM send_records WHERE id <= ? ORDER BY id LIMIT ?)`, upto, limit)
	n, err := rowsAffected(op, res, err)
	if err != nil || n == int64(limit) {
		return n, err
	}
	// Every record up to the mark is gone: so are the marks up to it.
	// The marks left cover records still there (a mark is left only past
	// the last one), so a new record's id, one past the highest, is
	// never under a mark left before it was written.
	if _, err := t.exec(`DELETE FROM send_record_marks WHERE upto <= ?`, upto); err != nil {
		return n, wrap(op, err)
	}
	return n, nil
}
