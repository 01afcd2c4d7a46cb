package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// ErrNotDelivered is wrapped when a message's sending failed for good; the
// item stays in the outbox marked failed, with the reason.
var ErrNotDelivered = errors.New("client: message refused by the server")

// Queue puts a text message to user (user@domain) or conversation in the
// outbox and returns its message id. It is durable when Queue returns;
// Flush sends it.
func (c *Client) Queue(to, text string) (string, error) {
	const op = "client.Queue"
	if c.cfg.Groups == nil {
		return "", fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	if to == "" || text == "" {
		return "", wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a recipient and a text are required")
	}
	a, err := c.Account()
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
		it := store.OutboxItem{ID: id, To: to, Text: text, Created: c.cfg.Now().UTC()}
		if conv, ok := conversationFor(tx, to); ok {
			it.Conversation = conv
		} else if tx.Meta(goneName(to)) != nil {
			return notMemberAnymore(to)
		} else if u, err := identity.ParseUser(to); err != nil {
			return wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
		} else if u.String() == a.User {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a conversation needs another user (your other devices see what you send)")
		} else {
			it.To = u.String()
		}
		_, err := tx.AddOutbox(it)
		return err
	})
	return id, err
}

// Flush sends every queued message in order until the outbox is empty or
// until the message with id until (if not empty) was accepted. Each message
// keeps its id on every retry, so a retry after a lost answer is
// deduplicated by the server. It returns ctx's error if it runs out of time.
func (c *Client) Flush(ctx context.Context, until string) error {
	if c.cfg.Groups == nil {
		return fmt.Errorf("client.Flush: %w", ErrNoE2EE)
	}
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if err := c.ensureKeyPackages(ctx); err != nil {
		return err
	}
	attempt, synced := 0, false
	for {
		if !synced {
			// Everything already in the mailbox (a Welcome, a commit) is
			// processed before anything is encrypted.
			if err := s.Resync(ctx); err != nil {
				if ctx.Err() != nil || !Retryable(err) {
					return err
				}
				continue
			}
			synced = true
			if ctx.Value(leavesKey{}) == nil {
				if err := c.commitLeaves(context.WithValue(ctx, leavesKey{}, true)); err != nil {
					c.log.Warn("committing leave requests", "err", err)
				}
			}
		}
		if err := s.CaughtUp(ctx); err != nil {
			return err
		}
		it, ok, err := c.nextOutbox()
		if err != nil || !ok {
			return err
		}
		err = c.sendItem(ctx, it)
		if errors.Is(err, store.ErrNotFound) {
			err = nil // another run on this profile sent it meanwhile
		}
		switch {
		case err == nil:
			attempt = 0
			if it.ID == until {
				return nil
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !Retryable(err):
			if ferr := c.failItem(it, err); ferr != nil {
				return ferr
			}
			if it.ID == until {
				return fmt.Errorf("%w: %w", ErrNotDelivered, err)
			}
			continue
		}
		c.log.Debug("send failed, retrying", "id", it.ID, "err", err)
		wait := s.backoff(attempt)
		var we *wire.Error
		if errors.As(err, &we) && we.RetryAfter > 0 { // rate limited: the server says when
			wait = max(wait, time.Duration(we.RetryAfter)*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		attempt++
	}
}

// leavesKey marks a Flush made while committing leave requests.
type leavesKey struct{}

// nextOutbox returns the oldest item not marked failed.
func (c *Client) nextOutbox() (store.OutboxItem, bool, error) {
	var items []store.OutboxItem
	err := c.st.View(func(tx *store.Tx) (err error) { items, err = tx.Outbox(); return })
	for _, it := range items {
		if it.Failed == "" {
			return it, true, err
		}
	}
	return store.OutboxItem{}, false, err
}

func (c *Client) failItem(it store.OutboxItem, reason error) error {
	c.log.Warn("message not delivered", "id", it.ID, "err", reason)
	return c.st.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // finished by another run meanwhile
		} else if err != nil {
			return err
		}
		cur.Failed = reason.Error()
		return tx.UpdateOutbox(cur)
	})
}

// sendItem encrypts the item if it is not yet (committing the advanced
// group state with the ciphertext), then sends the stored request and, once
// accepted, moves the message to history.
func (c *Client) sendItem(ctx context.Context, it store.OutboxItem) error {
	if it.Payload == nil {
		var err error
		if it, err = c.seal(ctx, it); err != nil {
			return err
		}
	}
	req := new(wire.Send)
	if err := proto.Unmarshal(it.Payload, req); err != nil {
		return fmt.Errorf("client: outbox item %s: %w", it.ID, err)
	}
	r, err := c.call(ctx, "client.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: req}})
	if wire.Is(err, wire.Code_CODE_STALE_EPOCH) {
		// Encrypted for an epoch the hub has left: catch up, then
		// re-encrypt under the same id (the hub never accepted it).
		return c.unseal(it, err)
	}
	if err != nil {
		return err
	}
	ok := r.GetSendOk()
	a, err := c.Account()
	if err != nil {
		return err
	}
	if it.Control != nil {
		return c.controlSent(it)
	}
	return c.st.Update(func(tx *store.Tx) error {
		m := store.Message{ID: it.ID, Conversation: req.GetConversationId(), From: a.User, Text: it.Text,
			SentAt: time.UnixMilli(ok.GetServerTimeMs()).UTC(), Seq: ok.GetConversationSeq()}
		if _, err := tx.AddHistory(m); err != nil {
			return err
		}
		if err := tx.DeleteOutbox(it.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err // (not found: another run on this profile finished it)
		}
		return nil
	})
}

// unseal drops an item's ciphertext so that it is encrypted again; the
// returned error is retryable so Flush catches up before the next try.
func (c *Client) unseal(it store.OutboxItem, cause error) error {
	err := c.st.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if err != nil {
			return err
		}
		cur.Payload, cur.Epoch = nil, 0
		return tx.UpdateOutbox(cur)
	})
	if err != nil {
		return err
	}
	return cause
}

// seal makes sure the conversation exists and has every device of its
// users, then encrypts the item and stores the request with the new group
// state in one transaction.
func (c *Client) seal(ctx context.Context, it store.OutboxItem) (store.OutboxItem, error) {
	conv := it.Conversation
	if conv == "" {
		var err error
		if conv, err = c.directConversation(ctx, it.To); err != nil {
			return it, err
		}
	}
	for try := 0; !c.recentlySynced(conv); try++ {
		err := c.reconcile(ctx, conv)
		if err == nil {
			c.markSynced(conv)
			break
		}
		if !errors.Is(err, errRedo) || try == 3 {
			return it, err
		}
	}
	self, err := c.self()
	if err != nil {
		return it, err
	}
	if err := c.checkReachable(conv, self); err != nil {
		return it, err
	}
	var pt []byte
	if it.Control == nil {
		if pt, err = encodeBody(it.Text); err != nil {
			return it, err
		}
	}
	err = c.st.Update(func(tx *store.Tx) error {
		cur, err := tx.OutboxItem(it.ID)
		if err != nil {
			return err // sent meanwhile by another run on this profile
		}
		if cur.Payload != nil {
			it = cur // sealed meanwhile by another run: send those bytes
			return nil
		}
		g, err := c.loadGroup(tx, conv, self, c.validator(ctx, tx))
		if err != nil {
			return err
		}
		if cur.Control != nil {
			ctl, err := c.sealControl(tx, conv, g, self, cur.Control)
			if err != nil {
				return err
			}
			if pt, err = encodeControlBody(ctl); err != nil {
				return err
			}
		}
		ct, err := g.Encrypt(pt)
		if err != nil {
			return fmt.Errorf("client: encrypt: %w", err)
		}
		req := &wire.Send{ConversationId: conv, MessageId: it.ID, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: g.Epoch(), Payload: ct}
		if it.Payload, err = proto.Marshal(req); err != nil {
			return err
		}
		it.Conversation, it.Epoch = conv, g.Epoch()
		if err := c.saveGroup(tx, conv, g); err != nil {
			return err
		}
		return tx.UpdateOutbox(it)
	})
	return it, err
}

// checkReachable refuses to encrypt for a conversation in which some other
// user has no device at all: nobody there could ever read the message.
func (c *Client) checkReachable(conv string, self Self) error {
	return c.st.View(func(tx *store.Tx) error {
		meta, err := getConversation(tx, conv)
		if err != nil {
			return err
		}
		state, err := tx.Group(conv)
		if err != nil {
			return err
		}
		g, err := c.cfg.Groups.Load(state, self, c.val)
		if err != nil {
			return err
		}
		have := peersOf(g.Members(), userOf(self.Address))
		for _, p := range meta.Peers {
			if !slices.Contains(have, p) {
				return wire.Errorf("client.Send", wire.Code_CODE_NO_KEY_PACKAGES,
					"%s has no device that can receive messages yet (no published KeyPackages)", p)
			}
		}
		return nil
	})
}

// groupSyncEvery is how long a group's roster counts as in line with its
// users' device lists after a check by this client (1:1 conversations
// are checked on every send). Group operations always check.
const groupSyncEvery = 30 * time.Second

// recentlySynced reports whether conv is a group checked by this client
// within groupSyncEvery and has no commit pending.
func (c *Client) recentlySynced(conv string) bool {
	c.mu.Lock()
	at, ok := c.synced[conv]
	c.mu.Unlock()
	if !ok || c.cfg.Now().Sub(at) > groupSyncEvery {
		return false
	}
	fresh := false
	c.st.View(func(tx *store.Tx) error {
		cv, err := getConversation(tx, conv)
		fresh = err == nil && cv.Group && tx.Meta(commitName(conv)) == nil
		return nil
	})
	return fresh
}

func (c *Client) markSynced(conv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.synced == nil {
		c.synced = map[string]time.Time{}
	}
	c.synced[conv] = c.cfg.Now()
}
