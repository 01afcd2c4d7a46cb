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
	return nil
}
