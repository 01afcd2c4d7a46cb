package storage

import (
	"fmt"
	"slices"
	"strings"
)

// Hot-path queries, prepared once at Open (see prepareHot). Everything on
// the path of Send, fan-out, delivery and ack is here.
const (
	fanOutMembers        = `SELECT device_id FROM conversation_members WHERE conv_id = ?1 AND device_id IS NOT NULL AND device_id <> ?2`
	fanOutWelcomeMembers = fanOutMembers + ` AND added_epoch = ?3`

	qFanOutHead          = `UPDATE mailbox_state SET head = head + 1 WHERE device_id IN (` + fanOutMembers + `) RETURNING device_id, head`
	qFanOutHeadWelcome   = `UPDATE mailbox_state SET head = head + 1 WHERE device_id IN (` + fanOutWelcomeMembers + `) RETURNING device_id, head`
	qFanOutInsert        = `INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, welcome, created_ms) SELECT device_id, head, ?1, ?4, 0, ?5 FROM mailbox_state WHERE device_id IN (` + fanOutMembers + `)` // ?3 unused here: NULL
	qFanOutInsertWelcome = `INSERT INTO mailbox(device_id, seq, conv_id, conv_seq, welcome, created_ms) SELECT device_id, head, ?1, ?4, 1, ?5 FROM mailbox_state WHERE device_id IN (` + fanOutWelcomeMembers + `)`

	qAck          = `UPDATE mailbox_state SET acked = MAX(acked, ?1) WHERE device_id = ?2 AND ?1 <= head`
	qMailboxState = `SELECT head, acked FROM mailbox_state WHERE device_id = ?`
	qEntries      = entrySelect + ` AND m.device_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`

	qConversation     = convSelect + ` WHERE c.id = ?`
	qConversationMeta = `SELECT id, kind, creator, epoch, last_seq, created_ms FROM conversations WHERE id = ?`
	// Subqueries, not joins: a LEFT JOIN of the roster, or a join of it
	// with mailbox_state, costs several times as much.
	qConversationForSend = `SELECT id, kind, creator, epoch, last_seq, created_ms,
		EXISTS (SELECT 1 FROM conversation_members WHERE conv_id = ?1 AND address = ?2),
		CASE WHEN ?4 THEN (SELECT group_concat(address, char(10)) FROM conversation_members WHERE conv_id = ?1 AND device_id IS NULL) END,
		(SELECT group_concat(m.device_id || ' ' || (SELECT head FROM mailbox_state s WHERE s.device_id = m.device_id), char(10))
			FROM conversation_members m WHERE m.conv_id = ?1 AND m.device_id IS NOT NULL AND m.device_id <> ?3),
		(SELECT COALESCE(MAX(added_epoch), 0) FROM conversation_members WHERE conv_id = ?1)
		FROM conversations WHERE id = ?1`
	qMembers      = `SELECT address, COALESCE(device_id, '') FROM conversation_members WHERE conv_id = ? ORDER BY address`
	qIsMember     = `SELECT COUNT(*) FROM conversation_members WHERE conv_id = ? AND address = ?`
	qCountMembers = `SELECT COUNT(*) FROM conversation_members WHERE conv_id = ?`
	qAdvance      = `UPDATE conversations SET epoch = ?, last_seq = ? WHERE id = ?`
	// A commit's GroupInfo (AdvanceConversation), or none.
	qPutGroupInfo = `INSERT INTO conversation_group_info(conv_id, group_info) VALUES (?1, ?2)
		ON CONFLICT (conv_id) DO UPDATE SET group_info = excluded.group_info`
	qDeleteGroupInfo = `DELETE FROM conversation_group_info WHERE conv_id = ?`
	qAppendLog       = `INSERT INTO conversation_log(conv_id, seq, sender, message_id, kind, epoch, payload, welcome, group_info, created_ms, refs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qAddRefs         = `UPDATE conversation_log SET refs = refs + ?1 WHERE conv_id = ?2 AND seq = ?3`
	// The dedup record by its narrow key (sendKey), the strings compared:
	// in send_records, or in the spill when another pair took the key
	// (migration 0017).
	qSendRecord = `SELECT conv_id, conv_seq, epoch, created_ms FROM send_records WHERE key = ?1 AND sender = ?2 AND message_id = ?3
		UNION ALL SELECT conv_id, conv_seq, epoch, created_ms FROM send_record_spill WHERE key = ?1 AND sender = ?2 AND message_id = ?3 LIMIT 1`
	// A new record, appended unless its key is taken (send_records_key is
	// UNIQUE): the claim in one statement when the pair is new, a
	// single-row INSERT … VALUES, which SQLite runs without a statement
	// journal (an INSERT … SELECT gets one: a copy of every page it
	// changes).
	qInsertSendRecord = `INSERT INTO send_records(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
		ON CONFLICT (key) DO NOTHING`
	// The record of a pair whose key another pair's record took.
	qSpillSendRecord = `INSERT INTO send_record_spill(key, sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`
)

// qFanOutHeads[n-1] moves the heads of n devices by one (FanOutTo), each
// only where it is still the one given: parameters device, head, device,
// head …
var qFanOutHeads = func() []string {
	qs := make([]string, 8)
	for n := range qs {
		var in, when []string
		for i := range n + 1 {
			in = append(in, fmt.Sprintf("?%d", 2*i+1))
			when = append(when, fmt.Sprintf("WHEN ?%d THEN ?%d", 2*i+1, 2*i+2))
		}
		qs[n] = `UPDATE mailbox_state SET head = head + 1 WHERE device_id IN (` + strings.Join(in, ", ") +
			`) AND head = CASE device_id ` + strings.Join(when, " ") + ` END`
	}
	return qs
}()

// qFanOutHeadsReturning is FanOutTo's qFanOutHead for more recipients than
// qFanOutHeads takes (written apart: it is viewSafe, qFanOutHead is not).
const qFanOutHeadsReturning = `UPDATE mailbox_state SET head = 1 + head WHERE device_id IN (` + fanOutMembers + `) RETURNING device_id, head`

var hotQueries = append([]string{
	qFanOutHead, qFanOutHeadWelcome, qFanOutInsert, qFanOutInsertWelcome, qFanOutHeadsReturning, qSendRoster,
	qAck, qMailboxState, qEntries,
	qConversation, qConversationMeta, qConversationForSend, qMembers, qIsMember, qCountMembers, qAdvance, qPutGroupInfo, qDeleteGroupInfo, qAppendLog, qAddRefs, qSendRecord, qInsertSendRecord, qSpillSendRecord,
}, slices.Concat(qAckRows, qMailboxRows, qLogRows, qAdvanceRows, qFanOutHeads)...)
