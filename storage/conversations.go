package storage

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Conversation is one MLS group hosted by this hub.
type Conversation struct {
	ID        string
	Kind      int
	Creator   string // device address
	Epoch     uint64
	GroupInfo []byte
	LastSeq   uint64
	CreatedMs int64
}

// Member is one device on a conversation's roster. DeviceID is set for
// devices of this server and empty for remote ones.
type Member struct {
	Address  string
	DeviceID string
}

// LogEntry is one accepted message in the hub's order.
type LogEntry struct {
	ConvID    string
	Seq       uint64
	Sender    string
	MessageID string
	Kind      int
	Epoch     uint64 // the epoch the message was produced in
	Payload   []byte
	Welcome   []byte // a commit's welcome for the devices it adds
	// GroupInfo is the GroupInfo (with the ratchet tree) of the epoch a
	// commit with a Welcome starts, delivered with the Welcome; kept only
	// when Welcome is set.
	GroupInfo []byte
	CreatedMs int64
	// Refs is how many mailbox rows the caller is about to add for the
	// entry with FanOutTo (which does not count them itself); FanOut,
	// AppendMailbox and AppendMailboxNotice count theirs. Retention
	// deletes an entry only once no mailbox row refers to it.
	Refs int
}

// SendRecord is the first result of a (sender, message id): the dedup record.
type SendRecord struct {
	Sender    string
	MessageID string
	ConvID    string
	ConvSeq   uint64
	Epoch     uint64 // the conversation's epoch after the message
	CreatedMs int64
}

func nullIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// InsertConversation creates a conversation with its first member(s);
// ErrConflict if the id is taken.
func (t *Tx) InsertConversation(c *Conversation, members []Member, peers []string) error {
	const op = "storage.InsertConversation"
	_, err := t.exec(`INSERT INTO conversations(id, kind, creator, epoch, last_seq, created_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, c.Kind, c.Creator, c.Epoch, c.LastSeq, c.CreatedMs)
	if isUnique(err) {
		return wrap(op, ErrConflict)
	}
	if err != nil {
		return wrap(op, err)
	}
	if len(c.GroupInfo) > 0 {
		if _, err := t.exec(qPutGroupInfo, c.ID, c.GroupInfo); err != nil {
			return wrap(op, err)
		}
	}
	for _, m := range members {
		if err := t.AddMember(c.ID, m, c.Epoch); err != nil {
			return wrap(op, err)
		}
	}
	for _, p := range peers {
		if _, err := t.exec(`INSERT OR IGNORE INTO conversation_peers(conv_id, user) VALUES (?, ?)`, c.ID, p); err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// convSelect reads conversations with their GroupInfo (migration 0018:
// kept apart, so that the rows every Send advances stay narrow); the
// conversations table is c.
const convSelect = `SELECT c.id, c.kind, c.creator, c.epoch, g.group_info, c.last_seq, c.created_ms
	FROM conversations c LEFT JOIN conversation_group_info g ON g.conv_id = c.id`

func scanConv(sc interface{ Scan(...any) error }) (*Conversation, error) {
	c := &Conversation{}
	err := sc.Scan(&c.ID, &c.Kind, &c.Creator, &c.Epoch, &c.GroupInfo, &c.LastSeq, &c.CreatedMs)
	return c, err
}

// Conversation returns one conversation (without its roster).
func (t *Tx) Conversation(id string) (*Conversation, error) {
	c := &Conversation{}
	err := t.row(qConversation, []any{id},
		&c.ID, &c.Kind, &c.Creator, &c.Epoch, &c.GroupInfo, &c.LastSeq, &c.CreatedMs)
	if err != nil {
		return nil, wrap("storage.Conversation", err)
	}
	t.pend.advanced(c)
	return c, nil
}

// ConversationMeta returns one conversation without its GroupInfo (nil):
// what an application message or proposal needs, without reading the
// GroupInfo blob (the ratchet tree) on every Send.
func (t *Tx) ConversationMeta(id string) (*Conversation, error) {
	c := &Conversation{}
	err := t.row(qConversationMeta, []any{id}, &c.ID, &c.Kind, &c.Creator, &c.Epoch, &c.LastSeq, &c.CreatedMs)
	if err != nil {
		return nil, wrap("storage.ConversationMeta", err)
	}
	t.pend.advanced(c)
	return c, nil
}

// SendView is what a Send other than a commit reads of its conversation
// (ConversationForSend).
type SendView struct {
	Conv   *Conversation // without its GroupInfo (as ConversationMeta)
	Member bool          // the sender is on the roster
	// Remote are the members without a device here (on other servers:
	// the DELIVERs go to them), addresses only; read when asked for.
	Remote []Member
	// Recipients are the local member devices but the sender's own, with
	// their mailbox heads as they are now; FanOutTo moves them.
	Recipients []Head
	// LastAdded is the latest epoch at which a member device (here or
	// elsewhere) was added: a message of an earlier epoch is one that
	// device cannot read.
	LastAdded uint64
}

// ConversationForSend reads what a Send other than a commit needs in one
// single-row statement: the conversation, whether sender is on its roster,
// the devices here that get the message (all local members but
// senderDevice) with their mailbox heads and, with remote set, the
// members on other servers. ErrNotFound if there is no such conversation.
func (t *Tx) ConversationForSend(id, sender, senderDevice string, remote bool) (*SendView, error) {
	const op = "storage.ConversationForSend"
	if sv, ok, err := t.cachedSendView(id, sender, senderDevice, remote); ok {
		return sv, wrap(op, err)
	}
	v := &SendView{Conv: &Conversation{}}
	c := v.Conv
	var addrs, recips sql.NullString
	err := t.row(qConversationForSend, []any{id, sender, senderDevice, remote},
		&c.ID, &c.Kind, &c.Creator, &c.Epoch, &c.LastSeq, &c.CreatedMs, &v.Member, &addrs, &recips, &v.LastAdded)
	if err != nil {
		return nil, wrap(op, err)
	}
	t.pend.advanced(c)
	if addrs.Valid {
		for a := range strings.SplitSeq(addrs.String, "\n") {
			v.Remote = append(v.Remote, Member{Address: a})
		}
	}
	if recips.Valid {
		// "DEVICE HEAD" lines: device ids have neither spaces nor newlines
		// (identity.CheckDeviceID).
		for line := range strings.SplitSeq(recips.String, "\n") {
			dev, head, ok := strings.Cut(line, " ")
			n, err := strconv.ParseUint(head, 10, 64)
			if !ok || err != nil {
				return nil, fmt.Errorf("%s: recipient %q: %v", op, line, err)
			}
			v.Recipients = append(v.Recipients, Head{DeviceID: dev, Seq: n})
		}
	}
	return v, nil
}

// ConversationsOfDevice lists the conversations a local device is a member of.
func (t *Tx) ConversationsOfDevice(deviceID string) ([]*Conversation, error) {
	rows, err := t.query(convSelect+` WHERE c.id IN
		(SELECT conv_id FROM conversation_members WHERE device_id = ?) ORDER BY c.created_ms, c.id`, deviceID)
	if err != nil {
		return nil, wrap("storage.ConversationsOfDevice", err)
	}
	defer rows.Close()
	var cs []*Conversation
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return nil, wrap("storage.ConversationsOfDevice", err)
		}
		cs = append(cs, c)
	}
	return cs, wrap("storage.ConversationsOfDevice", rows.Err())
}

// ConversationsOfUser lists, oldest first, the conversations in which any
// device of user userID is a member (so that a newly linked device finds
// the conversations its user's other devices are in).
func (t *Tx) ConversationsOfUser(userID int64) ([]*Conversation, error) {
	const op = "storage.ConversationsOfUser"
	rows, err := t.query(convSelect+` WHERE c.id IN
		(SELECT m.conv_id FROM conversation_members m JOIN devices d ON d.id = m.device_id WHERE d.user_id = ?)
		ORDER BY c.created_ms, c.id`, userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var cs []*Conversation
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		cs = append(cs, c)
	}
	return cs, wrap(op, rows.Err())
}

// Members returns a conversation's roster ordered by address.
func (t *Tx) Members(convID string) ([]Member, error) {
	rows, err := t.query(qMembers, convID)
	if err != nil {
		return nil, wrap("storage.Members", err)
	}
	defer rows.Close()
	var ms []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.Address, &m.DeviceID); err != nil {
			return nil, wrap("storage.Members", err)
		}
		ms = append(ms, m)
	}
	return ms, wrap("storage.Members", rows.Err())
}

// IsMember reports whether address is on the roster.
func (t *Tx) IsMember(convID, address string) (bool, error) {
	var n int
	err := t.row(qIsMember, []any{convID, address}, &n)
	return n > 0, wrap("storage.IsMember", err)
}

// CountMembers returns the roster size.
func (t *Tx) CountMembers(convID string) (int, error) {
	var n int
	err := t.row(qCountMembers, []any{convID}, &n)
	return n, wrap("storage.CountMembers", err)
}

// Peer is a local user sharing a conversation with another.
type Peer struct {
	UserID int64
	Name   string
}

// ConversationPeers lists the distinct local users that have a device in
// some conversation with one of userID's devices (userID included).
func (t *Tx) ConversationPeers(userID int64) ([]Peer, error) {
	rows, err := t.query(`SELECT DISTINCT u.id, u.name FROM devices d1
		JOIN conversation_members m1 ON m1.device_id = d1.id
		JOIN conversation_members m2 ON m2.conv_id = m1.conv_id
		JOIN devices d2 ON d2.id = m2.device_id
		JOIN users u ON u.id = d2.user_id
		WHERE d1.user_id = ?`, userID)
	if err != nil {
		return nil, wrap("storage.ConversationPeers", err)
	}
	defer rows.Close()
	var ps []Peer
	for rows.Next() {
		var p Peer
		if err := rows.Scan(&p.UserID, &p.Name); err != nil {
			return nil, wrap("storage.ConversationPeers", err)
		}
		ps = append(ps, p)
	}
	return ps, wrap("storage.ConversationPeers", rows.Err())
}

// AddMember puts a device on the roster as of epoch.
func (t *Tx) AddMember(convID string, m Member, epoch uint64) error {
	_, err := t.exec(`INSERT INTO conversation_members(conv_id, address, device_id, added_epoch) VALUES (?, ?, ?, ?)`,
		convID, m.Address, nullStr(m.DeviceID), epoch)
	if isUnique(err) {
		return wrap("storage.AddMember", ErrConflict)
	}
	return wrap("storage.AddMember", err)
}

// RemoveMember takes a device off the roster; ErrNotFound if absent.
func (t *Tx) RemoveMember(convID, address string) error {
	return wrap("storage.RemoveMember", affected(t.exec(
		`DELETE FROM conversation_members WHERE conv_id = ? AND address = ?`, convID, address)))
}

// AdvanceConversation records a conversation's new epoch, group info and
// last sequence. In the writer's transaction an advance without a group
// info waits to go in with the other requests' (pending_advance.go); the
// conversation as read in the transaction has it at once.
// ErrNotFound if there is no such conversation (for one that waits: the
// whole transaction fails; conversations are never deleted).
func (t *Tx) AdvanceConversation(id string, epoch uint64, groupInfo []byte, lastSeq uint64, setGroupInfo bool) error {
	if !setGroupInfo && t.pend != nil && t.pend.nested == 0 {
		t.pend.queueAdvance(id, epoch, lastSeq)
		t.viewAdvanced(id, epoch, lastSeq)
		return nil
	}
	const op = "storage.AdvanceConversation"
	if err := affected(t.exec(qAdvance, epoch, lastSeq, id)); err != nil || !setGroupInfo {
		return wrap(op, err)
	}
	if len(groupInfo) == 0 {
		_, err := t.exec(qDeleteGroupInfo, id)
		return wrap(op, err)
	}
	_, err := t.exec(qPutGroupInfo, id, groupInfo)
	return wrap(op, err)
}

// AppendLog adds an accepted message to the hub's log.
func (t *Tx) AppendLog(e *LogEntry) error {
	var gi []byte
	if len(e.Welcome) > 0 {
		gi = e.GroupInfo
	}
	_, err := t.exec(qAppendLog, e.ConvID, e.Seq, e.Sender, e.MessageID, e.Kind, e.Epoch, e.Payload,
		nullIfEmpty(e.Welcome), nullIfEmpty(gi), e.CreatedMs, e.Refs)
	if isUnique(err) {
		return wrap("storage.AppendLog", ErrConflict)
	}
	return wrap("storage.AppendLog", err)
}

// QueueLog adds an accepted message to the hub's log like AppendLog, but
// in the writer's transaction the entry waits to go in with the other
// requests' in a few multi-row statements (pending.go), or before any
// statement that could read the log. A duplicate (conversation, seq)
// then fails the whole transaction, not the request: queue only an entry
// whose sequence the request took from the conversation (last_seq + 1,
// advanced in the same request).
func (t *Tx) QueueLog(e *LogEntry) error {
	if t.pend == nil || t.pend.nested > 0 {
		return t.AppendLog(e)
	}
	q := *e
	if len(q.Welcome) == 0 {
		q.GroupInfo = nil
	}
	t.pend.logs = append(t.pend.logs, q)
	return nil
}

// PublicState returns the stored public MLS state of a conversation
// (ErrNotFound if it has none).
func (t *Tx) PublicState(convID string) (epoch uint64, state []byte, err error) {
	err = t.row(`SELECT epoch, state FROM conv_public_state WHERE conv_id = ?`, []any{convID}, &epoch, &state)
	return epoch, state, wrap("storage.PublicState", err)
}

// PutPublicState stores (or replaces) a conversation's public MLS state.
func (t *Tx) PutPublicState(convID string, epoch uint64, state []byte) error {
	_, err := t.exec(`INSERT INTO conv_public_state(conv_id, epoch, state) VALUES (?, ?, ?)
		ON CONFLICT(conv_id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state`, convID, epoch, state)
	return wrap("storage.PutPublicState", err)
}
