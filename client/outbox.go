package client

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"hearth/client/convstate"
	"hearth/client/outbox"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// ErrNotDelivered is wrapped when a message's sending failed for good; the
// item stays in the outbox marked failed, with the reason.
var ErrNotDelivered = outbox.ErrNotDelivered

// ErrSendLater is wrapped when a receipt or settings item could not be
// sent now for a reason that may pass; it stays in the outbox and the next
// Flush tries it again.
var ErrSendLater = outbox.ErrSendLater

// Queue puts a text message to user (user@domain) or conversation in the
// outbox and returns its message id. It is durable when Queue returns;
// Flush sends it.
func (c *Client) Queue(to, text string) (string, error) {
	const op = "client.Queue"
	if c.cfg.Groups == nil {
		return "", fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	if to == "" {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a recipient is required")
	}
	if strings.TrimSpace(text) == "" {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the text is empty")
	}
	if !utf8.ValidString(text) {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "the text is not UTF-8")
	}
	if b, err := encodeBody(text); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	} else if len(b) > MaxBodyBytes {
		return "", wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "the text is %d bytes encoded, over the limit of %d bytes (send it as a file: --file)", len(b), MaxBodyBytes)
	}
	return c.enqueue(op, to, store.OutboxItem{Text: text}, nil)
}

// MaxBodyBytes is the largest encoded message body Queue accepts: the
// server's default limit on a message (256 KiB) less room for the MLS
// framing, signature and padding around it.
const MaxBodyBytes = 256<<10 - 8<<10

// enqueue adds it (text or media; id, recipient and time are set here) to
// the outbox for to, a user or conversation, and returns its message id.
// also, if not nil, runs in the same store transaction, and so does the
// encryption when it needs nothing Flush would wait for (sealQueued).
func (c *Client) enqueue(op, to string, it store.OutboxItem, also func(*store.Tx) error) (string, error) {
	if c.cfg.Groups == nil {
		return "", fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	a, err := c.acct.Account()
	if err != nil {
		return "", err
	}
	if !a.Active {
		return "", wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "this device is not approved yet")
	}
	id, err := c.newID()
	if err != nil {
		return "", err
	}
	err = c.st.Update(func(tx *store.Tx) error {
		it.ID, it.Created = id, c.cfg.Now().UTC()
		var err error
		if it.Conversation, it.To, err = resolveRecipient(tx, op, to, a.User); err != nil {
			return err
		}
		added, err := tx.AddOutbox(it)
		if err != nil {
			return err
		}
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		_, err = c.sealer.sealQueued(tx, added) // encrypted now if nothing must be waited for
		return err
	})
	return id, err
}

// resolveRecipient turns to (a conversation id or user@domain) into the
// conversation it names, or the user of a direct conversation not known
// yet.
func resolveRecipient(tx *store.Tx, op, to, self string) (conv, user string, err error) {
	if conv, ok := convstate.For(tx, to); ok {
		return conv, to, nil
	}
	if tx.Meta(goneName(to)) != nil {
		return "", "", notMemberAnymore(to)
	}
	u, err := identity.ParseUser(to)
	if err != nil {
		return "", "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	if u.String() == self {
		return "", "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a conversation needs another user (your other devices see what you send)")
	}
	return "", u.String(), nil
}

// refusal is the reason kept for a message refused for good: a hub's
// "not a member" says that this device was removed from the group.
func refusal(it store.OutboxItem, err error) error {
	if wire.Is(err, wire.Code_CODE_NOT_MEMBER) && it.Conversation != "" {
		return notMemberAnymore(it.Conversation)
	}
	return err
}

// bodyGone reports whether a receipt or settings item that could not be
// encrypted (err, not retryable) can never be sent from this device
// (outbox.Config.Gone): the device left or was removed from its
// conversation, holds no state of it, gave up rejoining it (the user was
// told), or was revoked or its user disabled. Any other failure (the
// conversation out of step and not healed yet, a roster check or a key
// fetch that failed, a local error) keeps the item for the next Flush.
func (c *Client) bodyGone(it store.OutboxItem, err error) bool {
	switch wire.KindOf(err) {
	case wire.Code_CODE_NOT_MEMBER, wire.Code_CODE_DEVICE_REVOKED, wire.Code_CODE_USER_DISABLED:
		return true
	}
	if it.Conversation == "" {
		return false
	}
	gone := false
	c.st.View(func(tx *store.Tx) error {
		if tx.Meta(goneName(it.Conversation)) != nil {
			gone = true
			return nil
		}
		if _, err := convstate.Get(tx, it.Conversation); errors.Is(err, store.ErrNotFound) {
			gone = true
			return nil
		}
		o, out, err := convstate.GetOutOfStep(tx, it.Conversation)
		gone = err == nil && out && o.Tries >= convstate.MaxHealTries
		return nil
	})
	return gone
}

// OutboxState is what `chat outbox list` shows of an item: queued (not
// sent yet), sending (encrypted, handed to the server or about to be, its answer not
// recorded yet) or failed (refused for good; kept until retried or dropped).
// A receipt or settings item that failed is queued: the next Flush tries
// it again by itself.
func OutboxState(it store.OutboxItem) string {
	switch {
	case it.Failed != "" && it.Body == nil:
		return "failed"
	case it.Payload != nil:
		return "sending"
	}
	return "queued"
}

// Outbox returns the messages not sent yet, failed ones included, in the
// order they were queued.
func (c *Client) Outbox() ([]store.OutboxItem, error) {
	var out []store.OutboxItem
	err := c.st.View(func(tx *store.Tx) (err error) { out, err = tx.Outbox(); return })
	return out, err
}

// DropOutbox removes the message with id from the outbox (queued or
// failed); it is never sent. A message already handed to the server may
// still arrive.
func (c *Client) DropOutbox(id string) error {
	const op = "client.DropOutbox"
	err := c.st.Update(func(tx *store.Tx) error { return tx.DeleteOutbox(id) })
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "the outbox has no message %s", id)
	}
	return err
}

// RetryOutbox clears the failed mark of the message with id so that the
// next Flush sends it, under the same id, after the messages queued before
// it in its conversation (see Flush for the order).
func (c *Client) RetryOutbox(id string) error {
	const op = "client.RetryOutbox"
	err := c.out.Retry(id)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "the outbox has no message %s", id)
	}
	return err
}
