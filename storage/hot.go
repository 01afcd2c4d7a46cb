package storage

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

	qConversation     = `SELECT ` + convCols + ` FROM conversations WHERE id = ?`
	qConversationMeta = `SELECT id, kind, creator, epoch, last_seq, created_ms FROM conversations WHERE id = ?`
	// A LEFT JOIN of the roster costs several times these subqueries.
	qConversationForSend       = `SELECT id, kind, creator, epoch, last_seq, created_ms, EXISTS (SELECT 1 FROM conversation_members WHERE conv_id = ?1 AND address = ?2) FROM conversations WHERE id = ?1`
	qConversationForSendRemote = `SELECT id, kind, creator, epoch, last_seq, created_ms, EXISTS (SELECT 1 FROM conversation_members WHERE conv_id = ?1 AND address = ?2),
		(SELECT group_concat(address, char(10)) FROM conversation_members WHERE conv_id = ?1 AND device_id IS NULL) FROM conversations WHERE id = ?1`
	qMembers          = `SELECT address, COALESCE(device_id, '') FROM conversation_members WHERE conv_id = ? ORDER BY address`
	qIsMember         = `SELECT COUNT(*) FROM conversation_members WHERE conv_id = ? AND address = ?`
	qCountMembers     = `SELECT COUNT(*) FROM conversation_members WHERE conv_id = ?`
	qAdvance          = `UPDATE conversations SET epoch = ?, last_seq = ? WHERE id = ?`
	qAdvanceGroupInfo = `UPDATE conversations SET epoch = ?, group_info = ?, last_seq = ? WHERE id = ?`
	qAppendLog        = `INSERT INTO conversation_log(conv_id, seq, sender, message_id, kind, epoch, payload, welcome, group_info, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qSendRecord       = `SELECT conv_id, conv_seq, epoch, created_ms FROM sends WHERE sender = ? AND message_id = ?`
	qInsertSendRecord = `INSERT INTO sends(sender, message_id, conv_id, conv_seq, epoch, created_ms) VALUES (?, ?, ?, ?, ?, ?)`
	qClaimSendRecord  = qInsertSendRecord + ` ON CONFLICT(sender, message_id) DO NOTHING`
)

var hotQueries = append([]string{
	qFanOutHead, qFanOutHeadWelcome, qFanOutInsert, qFanOutInsertWelcome,
	qAck, qMailboxState, qEntries,
	qConversation, qConversationMeta, qConversationForSend, qConversationForSendRemote, qMembers, qIsMember, qCountMembers, qAdvance, qAdvanceGroupInfo, qAppendLog, qSendRecord, qInsertSendRecord, qClaimSendRecord,
}, append(qAckRows, qMailboxRows...)...)
