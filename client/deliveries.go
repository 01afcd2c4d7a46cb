package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// receiver processes this device's mailbox: Welcomes join groups, commits
// advance them, application messages are decrypted into history and the
// inbox. A run of deliveries (up to the session's push batch) and their
// mailbox sequence are committed in one store transaction before the
// session acknowledges them.
type receiver struct {
	st      *store.Store
	states  convstate.States
	mls     e2ee.Engine // joins from Welcomes
	dir     *directory.Directory
	rosters *roster.Roster
	self    func() (e2ee.Self, error)
	newID   func() (string, error)
	now     func() time.Time
	rcpt    *receipts
	// queued is told that a receipt was put in the outbox, for Receive
	// to send it soon.
	queued func()
	// noDelivered: no delivery receipts (Config.NoDeliveryReceipts).
	noDelivered bool
	log         *slog.Logger
}

var (
	_ session.DeliveryHandler = (*receiver)(nil)
	_ session.BatchHandler    = (*receiver)(nil)
)

// ProcessedSeq is the last mailbox sequence whose processing is stored.
func (r *receiver) ProcessedSeq() (uint64, error) {
	var seq uint64
	err := r.st.View(func(tx *store.Tx) error { seq = tx.MailboxSeq(); return nil })
	return seq, err
}

// HandleDelivery processes one delivery.
func (r *receiver) HandleDelivery(ctx context.Context, d *wire.Delivery) error {
	return r.HandleDeliveries(ctx, []*wire.Delivery{d})
}

// HandleDeliveries processes a run of deliveries in one store
// transaction; a conversation whose delivery must wait for a device list
// is parked (parked.go).
func (r *receiver) HandleDeliveries(ctx context.Context, ds []*wire.Delivery) error {
	return r.handleAll(ctx, ds)
}

// receiptDelivered queues one delivery receipt per conversation that
// received messages of other users in this transaction (got: the last
// one's sequence per conversation), in that transaction: a crash loses
// neither the messages nor their receipt. It sets *queued when it queued
// a new one: the caller tells r.queued once the transaction committed, so
// that the receipt flusher, woken, reads the receipt.
func (r *receiver) receiptDelivered(tx *store.Tx, self e2ee.Self, got map[string]uint64, queued *bool) error {
	if r.noDelivered {
		return nil
	}
	me := convstate.UserOf(self.Address)
	for conv, seq := range got {
		if tx.Meta(goneName(conv)) != nil {
			continue
		}
		id, err := r.rcpt.queue(tx, conv, me, ReceiptDelivered, seq)
		if err != nil {
			return err
		}
		if id != "" {
			*queued = true
		}
	}
	return nil
}

// receiptsQueued tells r.queued, after the commit of a transaction
// where receiptDelivered queued a receipt.
func (r *receiver) receiptsQueued(queued bool) {
	if queued && r.queued != nil {
		r.queued()
	}
}

// handle processes one delivery in tx and records its mailbox sequence.
// A delivery of a parked conversation, or of one in parking (whose
// delivery in this run must wait), is parked behind the conversation's
// earlier ones. got collects the messages that call for a delivery
// receipt (apply).
func (r *receiver) handle(ctx context.Context, tx *store.Tx, self e2ee.Self, d *wire.Delivery, parking map[string]error, got map[string]uint64) error {
	if d.GetSeq() <= tx.MailboxSeq() {
		return nil // processed before the last ack was lost
	}
	if err := tx.SetMailboxSeq(d.GetSeq()); err != nil {
		return err
	}
	if d.GetKind() == wire.MessageKind_MESSAGE_KIND_DELIVERY_FAILED {
		return r.deliveryFailed(tx, self, d)
	}
	if d.GetSender() == self.Address {
		return nil // our own message fanned back: already in history
	}
	if conv := d.GetConversationId(); conv != "" {
		if why := parking[conv]; why != nil || isParked(tx, conv) {
			if why == nil {
				why = errors.New("behind the conversation's parked deliveries")
			}
			return r.park(tx, d, why)
		}
	}
	return r.process(ctx, tx, self, d, got)
}

// process applies one delivery in tx (a new one, or a parked one).
func (r *receiver) process(ctx context.Context, tx *store.Tx, self e2ee.Self, d *wire.Delivery, got map[string]uint64) error {
	err := r.apply(ctx, tx, self, d, got)
	var bad *badMessage
	if errors.As(err, &bad) {
		// A message that cannot be processed is skipped (and logged
		// without content) so that it never wedges the mailbox; it is
		// counted for `recv`, and a conversation this device can no
		// longer follow is marked for healing (decision 0006).
		r.log.Warn("skipping undecodable delivery", "seq", d.GetSeq(), "conversation", d.GetConversationId(),
			"sender", d.GetSender(), "kind", d.GetKind().String(), "err", bad.err)
		return r.noteBad(tx, d, bad)
	}
	return err
}

// noteBad records what a skipped delivery means for its conversation.
func (r *receiver) noteBad(tx *store.Tx, d *wire.Delivery, bad *badMessage) error {
	conv := d.GetConversationId()
	if _, err := identity.ParseConversation(conv); err != nil {
		return nil // not a conversation: nothing to note (apply)
	}
	if tx.Meta(goneName(conv)) != nil {
		if d.GetKind() != wire.MessageKind_MESSAGE_KIND_WELCOME || !bad.outOfStep {
			return nil // no longer this device's conversation
		}
		// Added again after it left or was removed, with a Welcome that
		// does not open: rejoin (the hub refuses it, and the conversation
		// is gone again, if it does not list this device's user).
		if err := tx.DeleteMeta(goneName(conv)); err != nil {
			return err
		}
	}
	if d.GetKind() == wire.MessageKind_MESSAGE_KIND_APPLICATION {
		if err := convstate.AddUndecryptable(tx, conv, bad.reason()); err != nil {
			return err
		}
	}
	if !bad.outOfStep {
		return nil
	}
	return convstate.MarkOutOfStep(tx, conv, bad.reason())
}

// badMessage marks a delivery that is invalid (as opposed to a local
// failure). outOfStep tells that it shows this device cannot follow the
// conversation any more (its state is missing or behind); why says so in
// a few words, without content.
type badMessage struct {
	err       error
	outOfStep bool
	why       string
}

func (b *badMessage) Error() string { return b.err.Error() }

func (b *badMessage) reason() string {
	if b.why != "" {
		return b.why
	}
	return b.err.Error()
}

func (r *receiver) apply(ctx context.Context, tx *store.Tx, self e2ee.Self, d *wire.Delivery, got map[string]uint64) error {
	conv := d.GetConversationId()
	if _, err := identity.ParseConversation(conv); err != nil {
		// Only a misbehaving server delivers one (hubs refuse such ids):
		// skipped like any invalid delivery, with nothing recorded under
		// the id (noteBad), where storing it could fail the whole batch.
		return &badMessage{err: fmt.Errorf("delivery for no valid conversation: %w", err)}
	}
	switch d.GetKind() {
	case wire.MessageKind_MESSAGE_KIND_WELCOME:
		return r.join(ctx, tx, self, d)
	case wire.MessageKind_MESSAGE_KIND_APPLICATION, wire.MessageKind_MESSAGE_KIND_COMMIT:
	default:
		return &badMessage{err: fmt.Errorf("unsupported message kind %v", d.GetKind())}
	}
	v := r.dir.Members(ctx, tx)
	if d.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT {
		v.CommitAt = d.GetServerTimeMs() // devices revoked since may be added (decision 0006)
	}
	g, err := r.states.Load(tx, conv, self, v)
	if errors.Is(err, store.ErrNotFound) {
		return &badMessage{err: fmt.Errorf("no group state for conversation %s", conv), outOfStep: true,
			why: "this device has no state of the conversation"}
	} else if errors.Is(err, convstate.ErrDamagedState) {
		// Skipped and healed like a missing state: returned, it would
		// fail every batch holding a delivery of the conversation.
		return &badMessage{err: err, outOfStep: true, why: "this device's state of the conversation is damaged"}
	} else if err != nil {
		return err
	}
	if err := settlePending(tx, conv, g, d); err != nil {
		return err
	}
	before, epoch := g.Members(), g.Epoch()
	rcv, err := g.Process(d.GetPayload())
	if v.Transient != nil {
		return &listWait{conv: conv, err: fmt.Errorf("client: checking a member: %w", v.Transient)}
	}
	if err != nil {
		return unfollowable(d, epoch, err)
	}
	if len(v.Revoked) > 0 {
		r.log.Info("commit adds devices revoked since; they are removed before this device sends",
			"conversation", conv, "devices", v.Revoked)
	}
	if rcv.Sender != d.GetSender() {
		return &badMessage{err: fmt.Errorf("credential %q does not match sender %q", rcv.Sender, d.GetSender())}
	}
	if rcv.Application {
		// A member admitted while its user's list had moved on
		// (decision 0006) is shown as a sender only if listed, or if its
		// user's list dropped it after the hub accepted this message (a
		// message sent before the device was revoked, read late).
		if ok, err := r.dir.ListedAt(ctx, tx, rcv.Sender, d.GetServerTimeMs()); err != nil {
			return &listWait{conv: conv, err: fmt.Errorf("client: checking a sender: %w", err)}
		} else if !ok {
			return &badMessage{err: fmt.Errorf("sender %s is not on its user's device list", rcv.Sender),
				why: "the sending device is not on its user's device list"}
		}
	}
	at := store.Message{ID: d.GetMessageId(), Conversation: conv, From: convstate.UserOf(rcv.Sender),
		SentAt: time.UnixMilli(d.GetServerTimeMs()).UTC(), Seq: d.GetConversationSeq()}
	if rcv.Commit {
		r.rosters.Unsync(conv) // the roster moved: check it against the lists before the next send
		return r.applyCommit(ctx, tx, conv, g, before, rcv, at)
	}
	if err := r.states.Save(tx, conv, g); err != nil {
		return err
	}
	if !rcv.Application {
		return nil
	}
	bd, err := decodeFull(rcv.Plaintext)
	if err != nil {
		return &badMessage{err: err}
	}
	text, ctl := bd.Text, bd.Ctl
	if ctl != nil {
		evs, err := r.applyControl(tx, conv, g, self, rcv.Sender, *ctl)
		if err != nil {
			return err
		}
		return addEvents(tx, at, evs)
	}
	me := convstate.UserOf(self.Address)
	switch {
	case bd.Rcpt != nil:
		ev, err := r.rcpt.apply(tx, conv, me, at.From, *bd.Rcpt)
		if err != nil || ev == nil {
			return err
		}
		return tx.AddInbox(*ev)
	case bd.Set != nil:
		return applySettings(tx, conv, me, at.From, bd.Set, r.log)
	}
	m := at
	m.Text, m.Media = text, bd.Media
	if t, ok := senderTime(bd.TS); ok {
		server := m.SentAt
		m.SentAt, m.ServerTime = t, &server
	}
	if m.From == me {
		m.Recipients = convstate.PeersOf(g.Members(), me) // sent by another device of this user
	}
	added, err := tx.AddHistory(m)
	if err != nil || !added {
		return err
	}
	if m.From != me {
		got[conv] = max(got[conv], m.Seq)
	}
	return tx.AddInbox(m)
}

// maxSenderTime bounds the sender's time of a message (ms since 1970):
// times JSON cannot print (after year 9999) are ignored.
const maxSenderTime = 253402300799999

// senderTime is the sender's time ts of a message, if it has a usable one.
func senderTime(ts int64) (time.Time, bool) {
	if ts <= 0 || ts > maxSenderTime {
		return time.Time{}, false
	}
	return time.UnixMilli(ts).UTC(), true
}

// body is the plaintext of an application message. It is versioned so that
// later message types (media, reactions) extend it; a group control
// message carries Ctl instead of Text.
type body struct {
	V    int      `json:"v"`
	Text string   `json:"text,omitempty"`
	Ctl  *control `json:"ctl,omitempty"`
	// Media refers to an encrypted file (body_media.go); Text is then its
	// caption. Older clients ignore the field and show the caption.
	Media *store.MediaRef `json:"media,omitempty"`
	// TS is the sender's time (ms since 1970) when it queued the message;
	// bodies without it still decode (SentAt is then the server's time).
	TS int64 `json:"ts,omitempty"`
	// Rcpt is a delivery or read receipt (receipts.go), sent instead of
	// a text.
	Rcpt *receiptBody `json:"rcpt,omitempty"`
	// Set carries this user's settings to its other devices (settings.go).
	Set map[string]setting `json:"set,omitempty"`
}

// encodeBody encodes a text message body. HTML characters stay as they
// are (json.Marshal would make each of <, > and & six bytes long).
func encodeBody(text string) ([]byte, error) { return marshalBody(body{V: 1, Text: text}) }

// marshalBody encodes a body without escaping <, > and & (six bytes each
// otherwise, which would eat into the message size limit).
func marshalBody(m body) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func encodeControlBody(ctl []byte) ([]byte, error) {
	var c control
	if err := json.Unmarshal(ctl, &c); err != nil {
		return nil, err
	}
	return json.Marshal(body{V: 1, Ctl: &c})
}

func decodeBody(b []byte) (string, error) {
	t, _, err := decodeMessage(b)
	return t, err
}

// decodeMessage returns the text or the control message of a body.
func decodeMessage(b []byte) (string, *control, error) {
	m, err := decodeFull(b)
	return m.Text, m.Ctl, err
}

// decodeFull decodes and checks a body.
func decodeFull(b []byte) (body, error) {
	var m body
	if err := json.Unmarshal(b, &m); err != nil {
		return body{}, fmt.Errorf("message body: %w", err)
	}
	if m.V != 1 {
		return body{}, fmt.Errorf("message body version %d not supported", m.V)
	}
	if m.Media != nil {
		if err := checkMediaRef(m.Media); err != nil {
			return body{}, fmt.Errorf("message body: %w", err)
		}
	}
	if m.Rcpt != nil || m.Set != nil {
		if m.Text != "" || m.Ctl != nil || m.Media != nil || (m.Rcpt != nil && m.Set != nil) {
			return body{}, fmt.Errorf("message body: a receipt or settings message carries nothing else")
		}
	}
	if m.Rcpt != nil {
		if err := m.Rcpt.check(); err != nil {
			return body{}, fmt.Errorf("message body: %w", err)
		}
	}
	if m.Set != nil {
		if err := checkSettings(m.Set); err != nil {
			return body{}, fmt.Errorf("message body: %w", err)
		}
	}
	return m, nil
}

// settlePending resolves this device's pending commit from the hub's order
// when a delivery shows the outcome before the SendOK did (the answer was
// lost): a message of the next epoch means the hub accepted the commit; a
// commit by another member for the current epoch means it refused it (and
// processing that commit drops ours).
func settlePending(tx *store.Tx, conv string, g e2ee.Group, d *wire.Delivery) error {
	if tx.Meta(convstate.CommitName(conv)) == nil {
		return nil
	}
	if tx.Meta(convstate.ExternalName(conv)) != nil {
		// An external joiner only receives what follows its accepted commit.
		return convstate.SettleExternal(tx, conv, true)
	}
	switch {
	case d.GetEpoch() > g.Epoch():
		if err := g.MergeCommit(); err != nil {
			return fmt.Errorf("client: merge commit accepted by the hub: %w", err)
		}
	case d.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT && d.GetEpoch() == g.Epoch():
	default:
		return nil
	}
	return tx.DeleteMeta(convstate.CommitName(conv))
}

// unfollowable classifies a delivery the group could not process: a
// commit, or a message of a later epoch, shows that this device is out of
// step; a message of an earlier epoch (say, sent before a rejoin moved
// this device past it) is only counted.
func unfollowable(d *wire.Delivery, epoch uint64, err error) *badMessage {
	switch {
	case d.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT && d.GetEpoch() < epoch:
		return &badMessage{err: err, why: fmt.Sprintf("a commit of epoch %d, which this device is past", d.GetEpoch())}
	case d.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT:
		return &badMessage{err: err, outOfStep: true, why: fmt.Sprintf("a commit for epoch %d could not be processed", d.GetEpoch())}
	case d.GetEpoch() < epoch:
		return &badMessage{err: err, why: fmt.Sprintf("sent in epoch %d, before this device's epoch %d", d.GetEpoch(), epoch)}
	case d.GetEpoch() > epoch:
		return &badMessage{err: err, outOfStep: true, why: fmt.Sprintf("sent in epoch %d, this device was at epoch %d", d.GetEpoch(), epoch)}
	}
	// The current epoch: a replay or a damaged message, not a sign that
	// this device is behind.
	return &badMessage{err: err, why: "damaged or replayed"}
}
