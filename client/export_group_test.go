package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"testing"

	"hearth/client/convstate"
	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/storage"
)

// Group test hooks for package client_test.

// MailboxPayloads returns the MLS payloads of conv in the server mailbox
// of device (user@domain/DEVICE's DEVICE), oldest first: the ciphertexts
// as the server holds and relays them.
func (ts *testServer) MailboxPayloads(t *testing.T, deviceID, conv string) []*wire.Delivery {
	t.Helper()
	var out []*wire.Delivery
	err := ts.db.Read(context.Background(), func(tx *storage.Tx) error {
		es, err := tx.Entries(deviceID, 0, 100000)
		for _, e := range es {
			if e.ConvID == conv && !e.Welcome {
				out = append(out, &wire.Delivery{Seq: e.Seq, ConversationId: e.ConvID, ConversationSeq: e.ConvSeq, Sender: e.Sender,
					MessageId: e.MessageID, Kind: wire.MessageKind(e.Kind), Epoch: e.Epoch, Payload: e.Payload, ServerTimeMs: e.CreatedMs})
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// GroupState is this device's saved MLS state of conv, whole (trees embedded).
func (c *Client) GroupState(t *testing.T, conv string) []byte {
	t.Helper()
	var st []byte
	if err := c.st.View(func(tx *store.Tx) (err error) { st, err = c.wholeGroupState(tx, conv); return }); err != nil {
		t.Fatal(err)
	}
	return st
}

// Self is this device's member identity.
func (c *Client) Self(t *testing.T) e2ee.Self {
	s, err := c.acct.Self()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// RogueCommit builds (and does not send or keep) a commit of conv that
// removes every device of users, without any admin signature, as a
// misbehaving member's client could.
func (c *Client) RogueCommit(t *testing.T, conv string, users []string) (*wire.Send, error) {
	return c.RogueCommitSigned(t, conv, users, nil)
}

// AdminSeed is the group admin key seed this device holds for conv (nil if none).
func (c *Client) AdminSeed(t *testing.T, conv string) []byte {
	var seed []byte
	c.st.View(func(tx *store.Tx) error { m, _, _ := getGroupMeta(tx, conv); seed = m.AdminSeed; return nil })
	return seed
}

// RogueCommitSigned is RogueCommit signed with the admin key seed (e.g.
// one that was rotated away).
func (c *Client) RogueCommitSigned(t *testing.T, conv string, users []string, seed []byte) (*wire.Send, error) {
	t.Helper()
	self := c.Self(t)
	var req *wire.Send
	err := c.st.View(func(tx *store.Tx) error {
		g, _, err := c.groups.groupState(context.Background(), tx, conv, self)
		if err != nil {
			return err
		}
		var remove []string
		for _, m := range g.Members() {
			for _, u := range users {
				if convstate.UserOf(m) == u {
					remove = append(remove, m)
				}
			}
		}
		ac := e2ee.AdminCommit{Remove: remove}
		if seed != nil {
			key := ed25519.NewKeyFromSeed(seed)
			ac.Sign = func(e uint64, ch groupauth.Change) []byte { return groupauth.Sign(key, conv, e, ch) }
		}
		cm, err := g.CommitAdmin(ac)
		if err != nil {
			return err
		}
		id, _ := c.newID()
		req = &wire.Send{ConversationId: conv, MessageId: id, Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: g.Epoch(),
			Payload: cm.Message, RemoveDevices: cm.Removed, GroupInfo: cm.GroupInfo}
		return nil
	})
	return req, err
}

// SendRequest sends req as is to the server.
func (c *Client) SendRequest(ctx context.Context, req *wire.Send) error {
	_, err := c.link.call(ctx, "test.SendRequest", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: req}})
	return err
}

// Deliver processes d as if the server had delivered it (a misbehaving
// hub), through the same path as real deliveries (without moving the
// mailbox position).
func (c *Client) Deliver(ctx context.Context, d *wire.Delivery) error {
	self, err := c.acct.Self()
	if err != nil {
		return err
	}
	return c.st.Update(func(tx *store.Tx) error {
		err := c.recv.apply(ctx, tx, self, d, map[string]uint64{})
		var bad *badMessage
		if errors.As(err, &bad) {
			return c.recv.noteBad(tx, d, bad)
		}
		return err
	})
}

// SetLoggerForTest replaces the logger of the client, its receiver and its
// group operations.
func (c *Client) SetLoggerForTest(l *slog.Logger) {
	c.log, c.recv.log, c.groups.log, c.heal.log, c.devs.log = l, l, l, l, l
}

// NewTestServerMaxMembers is NewTestServer with a member limit.
func NewTestServerMaxMembers(t testing.TB, domain string, max int) *TestServer {
	return NewTestServerLimits(t, domain, max, 0)
}

// NewTestServerLimits is NewTestServer with a member limit and a message
// size limit (0: the default).
func NewTestServerLimits(t testing.TB, domain string, maxMembers, maxMessageBytes int) *TestServer {
	cfg := homeserverConfig()
	cfg.MaxMembers, cfg.MaxMessageBytes = maxMembers, maxMessageBytes
	return newTestServer(t, domain, cfg)
}

// SignedMeta is the last admin-signed description of conv this device holds.
func (c *Client) SignedMeta(t *testing.T, conv string) []byte {
	t.Helper()
	var out []byte
	err := c.st.View(func(tx *store.Tx) error {
		m, _, err := getGroupMeta(tx, conv)
		out = append([]byte(nil), m.Signed...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ReplayMeta queues old, a signed description of conv seen earlier, to be
// forwarded to the group, as a misbehaving member could replay it.
func (c *Client) ReplayMeta(t *testing.T, conv string, old []byte) {
	t.Helper()
	err := c.st.Update(func(tx *store.Tx) error {
		m, _, err := getGroupMeta(tx, conv)
		if err != nil {
			return err
		}
		m.Signed = old
		if err := putGroupMeta(tx, conv, m); err != nil {
			return err
		}
		return c.groups.forwardMeta(tx, conv)
	})
	if err != nil {
		t.Fatal(err)
	}
}
