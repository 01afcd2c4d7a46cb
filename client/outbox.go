package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/e2ee"
	"hearth/client/outbox"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// ErrNotDelivered is wrapped when a message's sending failed for good; the
// item stays in the outbox marked failed, with the reason.
var ErrNotDelivered = outbox.ErrNotDelivered

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
	return c.enqueue(op, to, store.OutboxItem{Text: text}, nil)
}

// enqueue adds it (text or media; id, recipient and time are set here) to
// the outbox for to, a user or conversation, and returns its message id.
// also, if not nil, runs in the same store transaction.
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
		if _, err := tx.AddOutbox(it); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	return id, err
}

// resolveRecipient turns to (a conversation id or user@domain) into the
// conversation it names, or the user of a direct conversation not known
// yet.
func resolveRecipient(tx *store.Tx, op, to, self string) (conv, user string, err error) {
	if conv, ok := conversationFor(tx, to); ok {
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
	self, err := c.acct.Self()
	if err != nil {
		return it, err
	}
	if err := c.checkReachable(conv, self); err != nil {
		return it, err
	}
	var pt []byte
	if it.Control == nil {
		if pt, err = encodeItemBody(it); err != nil {
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
		g, err := c.loadGroup(tx, conv, self, c.dir.Members(ctx, tx))
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
func (c *Client) checkReachable(conv string, self e2ee.Self) error {
	return c.st.View(func(tx *store.Tx) error {
		meta, err := getConversation(tx, conv)
		if err != nil {
			return err
		}
		return c.viewGroup(tx, conv, self, c.dir.Pinned(), func(g e2ee.Group) error {
			have := peersOf(g.Members(), userOf(self.Address))
			for _, p := range meta.Peers {
				if !slices.Contains(have, p) {
					return wire.Errorf("client.Send", wire.Code_CODE_NO_KEY_PACKAGES,
						"%s has no device that can receive messages yet (no published KeyPackages)", p)
				}
			}
			return nil
		})
	})
}

// groupSyncEvery is how long a group's roster counts as in line with its
// users' device lists after a check by this client. Group operations
// always check.
const groupSyncEvery = 30 * time.Second

// directSyncEvery is the same for a 1:1 conversation: within it, a send
// uses the pinned, verified device lists instead of fetching them again.
// A change this client learns of sooner resets it (unsyncAll, unsync): a
// fetched list that differs from the pinned one, a commit received in the
// conversation, a stale-epoch refusal, an approval or revocation made here.
// So a peer's device added by anyone else's commit is in the group at once,
// and one that nobody added yet is added by this client's first send after
// at most directSyncEvery (a new process, e.g. `hearth chat send`, always
// checks).
const directSyncEvery = 10 * time.Second

// recentlySynced reports whether conv was checked by this client within
// its window and has no commit pending.
func (c *Client) recentlySynced(conv string) bool {
	c.mu.Lock()
	at, ok := c.synced[conv]
	c.mu.Unlock()
	if !ok {
		return false
	}
	fresh := false
	c.st.View(func(tx *store.Tx) error {
		cv, err := getConversation(tx, conv)
		if err != nil || tx.Meta(commitName(conv)) != nil {
			return nil
		}
		window := directSyncEvery
		if cv.Group {
			window = groupSyncEvery
		}
		fresh = c.cfg.Now().Sub(at) <= window
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

// unsync makes the next send to conv check its roster against the lists.
func (c *Client) unsync(conv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.synced, conv)
}

// unsyncAll does unsync for every conversation (a device list changed).
func (c *Client) unsyncAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.synced)
}
