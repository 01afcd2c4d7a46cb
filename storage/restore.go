package storage

import "fmt"

// RestoreGap is how far SkipRestoredSequences moves every sequence on. It
// is far more than the entries a server assigns between a backup and a
// restore, and small enough for 2^31 restores before an int64 overflows.
const RestoreGap = 1 << 32

// SkipRestoredSequences moves on, by gap, the sequences a restored
// database would otherwise hand out again: every device's mailbox head,
// and the log sequence of every conversation hubbed here (its id ends in
// "@"+domain). Devices and peer servers may already hold entries numbered
// after the backup: a device resumes after the last sequence it
// processed, keeps history by conversation sequence, and a follower
// server ignores a DELIVER at or below its last conversation sequence.
// Numbers reused after a restore would be skipped by all three; numbers
// past the gap are new to all of them. A device's acknowledged position
// is left as it is: entries it acknowledged are not delivered again
// because it resumes after what it processed (Sync after_seq).
//
// Conversations hubbed elsewhere keep their sequences (the hub numbers
// them) but are marked restored at their last sequence: the hub's next
// DELIVER names as previous a message this server lost, and
// RestoredFollowerSeq lets the hub package accept that one gap instead of
// waiting for ever.
func (t *Tx) SkipRestoredSequences(domain string, gap uint64) error {
	const op = "storage.SkipRestoredSequences"
	if domain == "" || gap == 0 {
		return fmt.Errorf("%s: need a domain and a gap", op)
	}
	if _, err := t.exec(`UPDATE mailbox_state SET head = head + ?`, gap); err != nil {
		return fmt.Errorf("%s: mailboxes: %w", op, err)
	}
	suffix := "@" + domain
	if _, err := t.exec(`UPDATE conversations SET last_seq = last_seq + ? WHERE substr(id, -length(?)) = ?`,
		gap, suffix, suffix); err != nil {
		return fmt.Errorf("%s: conversations: %w", op, err)
	}
	if _, err := t.exec(`INSERT OR REPLACE INTO fed_settings(key, value)
		SELECT ? || id, CAST(last_seq AS TEXT) FROM conversations WHERE substr(id, -length(?)) != ?`,
		restoredPrefix, suffix, suffix); err != nil {
		return fmt.Errorf("%s: followed conversations: %w", op, err)
	}
	return nil
}

// restoredPrefix keys the restore marks of followed conversations in
// fed_settings (federation state: this server follows those hubs).
const restoredPrefix = "restored-conv:"

// RestoredFollowerSeq returns the last sequence a conversation hubbed
// elsewhere had when this database was restored (SkipRestoredSequences);
// ErrNotFound when it was not restored or the mark is forgotten.
func (t *Tx) RestoredFollowerSeq(convID string) (uint64, error) {
	var v string
	if err := t.row(`SELECT value FROM fed_settings WHERE key = ?`, []any{restoredPrefix + convID}, &v); err != nil {
		return 0, wrap("storage.RestoredFollowerSeq", err)
	}
	var seq uint64
	if _, err := fmt.Sscan(v, &seq); err != nil {
		return 0, fmt.Errorf("storage.RestoredFollowerSeq: %q: %w", v, err)
	}
	return seq, nil
}

// ForgetRestoredFollower removes a conversation's restore mark.
func (t *Tx) ForgetRestoredFollower(convID string) error {
	_, err := t.exec(`DELETE FROM fed_settings WHERE key = ?`, restoredPrefix+convID)
	return wrap("storage.ForgetRestoredFollower", err)
}

// DropSingleUseKeyPackages deletes every published single-use KeyPackage
// of a restored database. Those claimed after the backup would be handed
// out again, and their devices deleted the private parts when they were
// used; until devices publish new ones, others add them with their
// last-resort package, which devices keep.
func (t *Tx) DropSingleUseKeyPackages() error {
	_, err := t.exec(`DELETE FROM key_packages`)
	return wrap("storage.DropSingleUseKeyPackages", err)
}
