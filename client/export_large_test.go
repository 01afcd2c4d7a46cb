package client

import (
	"context"
	"errors"
	"testing"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// Large-group test hooks for package client_test.

// NewTestServerCommitLimit is NewTestServer with a member limit and a
// commit size limit (application messages keep the default limit, or the
// commit limit if that is smaller).
func NewTestServerCommitLimit(t testing.TB, domain string, maxMembers, maxCommitBytes int) *TestServer {
	cfg := homeserverConfig()
	cfg.MaxMembers, cfg.MaxCommitBytes = maxMembers, maxCommitBytes
	cfg.MaxMessageBytes = min(256<<10, maxCommitBytes)
	return newTestServer(t, domain, cfg)
}

// WelcomeFor returns the Welcome delivery for conv in the server mailbox
// of device deviceID, as the server would push it (with its GroupInfo).
func (ts *testServer) WelcomeFor(t *testing.T, deviceID, conv string) *wire.Delivery {
	t.Helper()
	var out *wire.Delivery
	err := ts.db.Read(context.Background(), func(tx *storage.Tx) error {
		es, err := tx.Entries(deviceID, 0, 100000)
		for _, e := range es {
			if e.ConvID == conv && e.Welcome {
				out = &wire.Delivery{Seq: e.Seq, ConversationId: e.ConvID, Sender: e.Sender, MessageId: e.MessageID,
					Kind: wire.MessageKind_MESSAGE_KIND_WELCOME, Epoch: e.Epoch + 1, Payload: e.Payload, ServerTimeMs: e.CreatedMs,
					GroupInfo: e.GroupInfo}
			}
		}
		return err
	})
	if err != nil || out == nil {
		t.Fatalf("no welcome to %s for device %s: %v", conv, deviceID, err)
	}
	return out
}

// HasGroup reports whether this device holds an MLS state for conv,
// without talking to the server.
func (c *Client) HasGroup(t *testing.T, conv string) bool {
	t.Helper()
	err := c.st.View(func(tx *store.Tx) error { _, err := tx.Group(conv); return err })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// CheckRoster runs the check a send makes when conv's roster was last
// checked more than groupSyncEvery ago (reconcile), so that a benchmark
// can leave it out of what it times.
func (c *Client) CheckRoster(ctx context.Context, conv string) error {
	return c.rosters.Settle(ctx, conv, true)
}
