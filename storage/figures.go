package storage

import "fmt"

// Figures are totals over the whole database for monitoring.
type Figures struct {
	// MailboxBacklog is the mailbox entries not yet acknowledged by
	// their device, over all devices.
	MailboxBacklog int64
	// FederationQueue is the envelopes waiting to be sent to peer servers.
	FederationQueue int64
	// MediaBytes is the size of the complete media stored.
	MediaBytes int64
	// MediaFiles is how many complete media are stored.
	MediaFiles int64
}

// Figures computes the totals. The backlog counts entries per device past
// its acknowledgement (a range of the mailbox's primary key per device),
// so it costs about one step per device and per waiting entry.
func (t *Tx) Figures() (Figures, error) {
	var f Figures
	err := t.row(`SELECT
		(SELECT COALESCE(SUM((SELECT COUNT(*) FROM mailbox m WHERE m.device_id = s.device_id AND m.seq > s.acked)), 0) FROM mailbox_state s),
		(SELECT COUNT(*) FROM fed_outbox),
		(SELECT COALESCE(SUM(total_size), 0) FROM media WHERE complete_ms > 0),
		(SELECT COUNT(*) FROM media WHERE complete_ms > 0)`, nil,
		&f.MailboxBacklog, &f.FederationQueue, &f.MediaBytes, &f.MediaFiles)
	if err != nil {
		return f, fmt.Errorf("storage.Figures: %w", err)
	}
	return f, nil
}
