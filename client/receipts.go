package client

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// Receipts (docs/receipts.md) are MLS application messages like any
// other: the body carries {"rcpt":{"kind":"delivered"|"read","up_to":SEQ}}
// and says that its sender's user holds (delivered) or has read every
// message of the conversation up to the hub's sequence SEQ written by
// other users. One receipt thus covers any number of messages, and a newer
// one supersedes an older one. Receipts are never receipted and never
// enter history.

// Receipt kinds.
const (
	ReceiptDelivered = "delivered"
	ReceiptRead      = "read"
)

// receiptBody is the receipt inside a message body. Conv is set only in
// the settings group: this user's read of conversation Conv, for its
// other devices, when read receipts are off in that 1:1 conversation.
type receiptBody struct {
	Kind string `json:"kind"`
	UpTo uint64 `json:"up_to"`
	Conv string `json:"conv,omitempty"`
}

// check validates a received receipt.
func (r *receiptBody) check() error {
	if r.Kind != ReceiptDelivered && r.Kind != ReceiptRead {
		return fmt.Errorf("receipt: unknown kind %q", r.Kind)
	}
	if r.UpTo == 0 || r.UpTo > maxSeq {
		return fmt.Errorf("receipt: up_to %d out of range", r.UpTo)
	}
	if r.Conv != "" && (len(r.Conv) > maxConvID || !printable(r.Conv) || !strings.Contains(r.Conv, "@")) {
		return fmt.Errorf("receipt: bad conversation id")
	}
	return nil
}

// maxConvID bounds a conversation id in a receipt.
const maxConvID = 300

// maxSeq bounds a sequence number in a receipt (2^53, exact in JSON
// numbers everywhere).
const maxSeq = 1 << 53

// receiptMark is how far one user's receipts reach in a conversation.
type receiptMark struct {
	Delivered uint64 `json:"d,omitempty"`
	Read      uint64 `json:"r,omitempty"`
}

// receiptState is a conversation's receipt marks by user (this user's
// own included: how far this user's devices received and read).
type receiptState map[string]receiptMark

func receiptName(conv string) string { return "rcpt/" + conv }

// pendingReceiptName holds the id of the outbox item that carries this
// device's next receipt of kind in conv, while it is not encrypted yet.
func pendingReceiptName(conv, kind string) string { return "rcptq/" + kind + "/" + conv }

func loadReceipts(tx *store.Tx, conv string) (receiptState, error) {
	st := receiptState{}
	if raw := tx.Meta(receiptName(conv)); raw != nil {
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("client: receipt state of %s: %w", conv, err)
		}
	}
	return st, nil
}

func saveReceipts(tx *store.Tx, conv string, st receiptState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.PutMeta(receiptName(conv), b)
}

// advance moves user's mark of kind up to upTo and returns the previous
// mark, and whether it moved. A read implies delivery.
func (st receiptState) advance(user, kind string, upTo uint64) (uint64, bool) {
	m := st[user]
	old := m.Delivered
	if kind == ReceiptRead {
		old = m.Read
	}
	if upTo <= old {
		return old, false
	}
	if kind == ReceiptRead {
		m.Read = upTo
	}
	m.Delivered = max(m.Delivered, upTo)
	st[user] = m
	return old, true
}

// receipts queues and applies receipts. It runs inside the caller's store
// transaction, so a receipt is queued durably together with what caused
// it (the deliveries it acknowledges, the read it reports).
type receipts struct {
	newID func() (string, error)
	now   func() time.Time
}

// queue records that this device's user holds (or read) conv's messages
// up to upTo and puts a receipt saying so in the outbox, merged into the
// receipt of that kind still waiting there, if any. It returns the id of
// the outbox item that carries it ("" when nothing was queued). Read
// receipts of a direct conversation are not sent to the other side while
// this user turned them off (the mark still moves).
func (r *receipts) queue(tx *store.Tx, conv, me, kind string, upTo uint64) (string, error) {
	st, err := loadReceipts(tx, conv)
	if err != nil {
		return "", err
	}
	if _, moved := st.advance(me, kind, upTo); !moved {
		return "", nil
	}
	if err := saveReceipts(tx, conv, st); err != nil {
		return "", err
	}
	rc, to, pending := receiptBody{Kind: kind, UpTo: upTo}, conv, pendingReceiptName(conv, kind)
	if kind == ReceiptRead && !readReceiptsOn(tx) && isDirect(tx, conv) {
		// Not to the sender; to this user's other devices only, through
		// the settings group (when there is one yet).
		if to = string(tx.Meta(settingsConvName)); to == "" {
			return "", nil
		}
		rc.Conv, pending = conv, pendingReceiptName(to, kind+">"+conv)
	}
	body, err := json.Marshal(body{V: 1, TS: r.now().UnixMilli(), Rcpt: &rc})
	if err != nil {
		return "", err
	}
	if kind == ReceiptRead && rc.Conv == "" {
		if err := dropCoveredDelivery(tx, conv, upTo); err != nil {
			return "", err
		}
	}
	if id := tx.Meta(pending); id != nil {
		it, err := tx.OutboxItem(string(id))
		if err == nil && it.Payload == nil {
			// Not encrypted yet (or kept after a failure, which the newer
			// receipt replaces).
			it.Body, it.Failed = body, ""
			return it.ID, tx.UpdateOutbox(it)
		}
	}
	id, err := r.newID()
	if err != nil {
		return "", err
	}
	it := store.OutboxItem{ID: id, Conversation: to, Queue: rcptQueue(to), Body: body, Created: r.now().UTC()}
	if _, err := tx.AddOutbox(it); err != nil {
		return "", err
	}
	return id, tx.PutMeta(pending, []byte(id))
}

// dropCoveredDelivery removes the delivery receipt waiting (not yet
// encrypted) in conv's outbox if a read receipt up to upTo covers it: a
// read implies delivery, so `recv --mark-read` costs one receipt, not two.
func dropCoveredDelivery(tx *store.Tx, conv string, upTo uint64) error {
	name := pendingReceiptName(conv, ReceiptDelivered)
	id := tx.Meta(name)
	if id == nil {
		return nil
	}
	it, err := tx.OutboxItem(string(id))
	if err != nil || it.Payload != nil {
		return nil // sent, or on its way: leave it
	}
	b, err := decodeFull(it.Body)
	if err != nil || b.Rcpt == nil || b.Rcpt.UpTo > upTo {
		return nil
	}
	if err := tx.DeleteOutbox(it.ID); err != nil {
		return err
	}
	return tx.DeleteMeta(name)
}

// apply records a receipt of reader's user (from) and returns the
// receipt event for recv, or nil when it moves nothing. A read receipt of
// another user in a direct conversation is ignored while this user has
// read receipts off (as in WhatsApp: who does not send them does not see
// them).
func (r *receipts) apply(tx *store.Tx, conv, me, from string, rc receiptBody) (*store.Message, error) {
	if rc.Conv != "" {
		if from != me {
			return nil, nil // only this user's devices speak for this user's reads
		}
		conv, rc.Conv = rc.Conv, ""
	}
	if rc.Kind == ReceiptRead && from != me && !readReceiptsOn(tx) && isDirect(tx, conv) {
		rc.Kind = ReceiptDelivered // what a read receipt says about delivery still holds
	}
	st, err := loadReceipts(tx, conv)
	if err != nil {
		return nil, err
	}
	old, moved := st.advance(from, rc.Kind, rc.UpTo)
	if !moved {
		return nil, nil
	}
	if err := saveReceipts(tx, conv, st); err != nil {
		return nil, err
	}
	msgs, err := tx.HistoryRange(conv, old, rc.UpTo)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range msgs {
		if m.Event == "" && m.From != from {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return &store.Message{Event: "receipt", Conversation: conv, User: from, Kind: rc.Kind, MessageIDs: ids}, nil
}

// isDirect reports whether conv is a 1:1 conversation.
func isDirect(tx *store.Tx, conv string) bool {
	cv, err := convstate.Get(tx, conv)
	return err == nil && !cv.Group && len(cv.Peers) == 1
}

// withStatus fills in the receipt state of the messages this user sent
// (me: user@domain). In a direct conversation read receipts are hidden
// while this user has them off.
func withStatus(tx *store.Tx, me string, msgs []store.Message) ([]store.Message, error) {
	states := map[string]receiptState{}
	hideRead := map[string]bool{}
	for i, m := range msgs {
		if m.From != me || m.Event != "" {
			continue
		}
		st, ok := states[m.Conversation]
		if !ok {
			var err error
			if st, err = loadReceipts(tx, m.Conversation); err != nil {
				return nil, err
			}
			states[m.Conversation] = st
			hideRead[m.Conversation] = !readReceiptsOn(tx) && isDirect(tx, m.Conversation)
		}
		to := m.Recipients
		if to == nil {
			if cv, err := convstate.Get(tx, m.Conversation); err == nil {
				to = cv.Peers
			}
		}
		var delivered, read []string
		for _, u := range to {
			mk := st[u]
			if mk.Delivered >= m.Seq {
				delivered = append(delivered, u)
			}
			if mk.Read >= m.Seq && !hideRead[m.Conversation] {
				read = append(read, u)
			}
		}
		m.Status, m.DeliveredTo, m.ReadBy = "sent", delivered, read
		switch {
		case len(to) > 0 && len(read) == len(to):
			m.Status = "read"
		case len(to) > 0 && len(delivered) == len(to):
			m.Status = "delivered"
		}
		msgs[i] = m
	}
	return msgs, nil
}

// ReadMark is what MarkRead did: the conversation, the sequence read up
// to (0: nothing to read), and the outbox item carrying the receipt (""
// when there is nothing to send: read already, or no one to tell).
type ReadMark struct {
	Conversation string
	Seq          uint64
	ReceiptID    string
}

// MarkRead marks the messages of a conversation (target: a user address
// or a conversation id) read up to the message with id upTo (the last
// message when empty): this user's other devices learn it, and the
// senders too unless read receipts are off in a direct conversation. The
// receipt is sent by the next Flush (Flush(ctx, mark.ReceiptID) waits for
// it).
func (c *Client) MarkRead(target, upTo string) (ReadMark, error) {
	const op = "client.MarkRead"
	var mark ReadMark
	me, err := c.user()
	if err != nil {
		return mark, err
	}
	var seq uint64
	var conv string
	err = c.st.Update(func(tx *store.Tx) error {
		var ok bool
		conv, ok = convstate.For(tx, target)
		if !ok {
			if slices.Contains(tx.HistoryConversations(), target) {
				conv = target
			} else {
				return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation with %s on this device", target)
			}
		}
		if tx.Meta(goneName(conv)) != nil {
			return notMemberAnymore(conv)
		}
		limit := 1 // the last message
		if upTo != "" {
			limit = 0
		}
		h, err := tx.History(conv, limit)
		if err != nil {
			return err
		}
		for _, m := range h {
			if upTo == "" || m.ID == upTo {
				seq = m.Seq
			}
		}
		if upTo != "" && seq == 0 {
			return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "conversation %s has no message %s on this device", conv, upTo)
		}
		if seq == 0 {
			return nil // nothing to read yet
		}
		id, err := c.recv.rcpt.queue(tx, conv, me, ReceiptRead, seq)
		mark.ReceiptID = id
		return err
	})
	mark.Conversation, mark.Seq = conv, seq
	if err == nil && mark.ReceiptID != "" {
		c.receiptQueued()
	}
	return mark, err
}

// markReadSeq marks conv read up to seq (for `recv --mark-read`).
func (c *Client) markReadSeq(conv string, seq uint64) error {
	me, err := c.user()
	if err != nil {
		return err
	}
	var id string
	err = c.st.Update(func(tx *store.Tx) (err error) {
		id, err = c.recv.rcpt.queue(tx, conv, me, ReceiptRead, seq)
		return err
	})
	if err == nil && id != "" {
		c.receiptQueued()
	}
	return err
}

// MarkReadMessage marks m's conversation read up to m (a message Receive
// printed); the receipt is sent by the next Flush.
func (c *Client) MarkReadMessage(m store.Message) error {
	if m.Conversation == "" || m.Seq == 0 {
		return nil
	}
	return c.markReadSeq(m.Conversation, m.Seq)
}

// OutboxBodyKind names what an outbox item with a ready body carries:
// "receipt", "settings", or "" for any other item.
func OutboxBodyKind(it store.OutboxItem) string {
	if it.Body == nil {
		return ""
	}
	var b body
	if json.Unmarshal(it.Body, &b) == nil && b.Set != nil {
		return "settings"
	}
	return "receipt"
}
