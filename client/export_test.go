package client

import (
	"context"
	"testing"
	"time"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// Exports for the external tests of this directory (package client_test),
// which run the client with the real MLS engine (client/mlsgroup imports
// this package, so those tests cannot live inside it).

type TestServer = testServer

func NewTestServer(t *testing.T, domain string) *TestServer {
	return newTestServer(t, domain, homeserverConfig())
}

func (ts *testServer) AddUser(t testing.TB, name, password string) string {
	return ts.addUser(t, name, password)
}
func (ts *testServer) Dial() DialFunc { return ts.dial }
func (ts *testServer) DropAll()       { ts.dropAll() }

// SendRaw sends an arbitrary payload as an application message of the
// conversation with peer, as a misbehaving client of a member device could.
func (c *Client) SendRaw(ctx context.Context, peer string, payload []byte) error {
	var conv string
	c.st.View(func(tx *store.Tx) error { conv, _ = convstate.For(tx, peer); return nil })
	id, err := c.newID()
	if err != nil {
		return err
	}
	_, err = c.link.call(ctx, "test.SendRaw", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{
		ConversationId: conv, MessageId: id, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: 1, Payload: payload,
	}}})
	return err
}

// SetConnectWait shortens Receive's connect and catch-up stall limit for a
// test; the returned function restores it.
func SetConnectWait(d time.Duration) (restore func()) {
	old := connectWait
	connectWait = d
	return func() { connectWait = old }
}

// GroupCacheStats returns the group cache's hits and misses (client/e2ee).
func (c *Client) GroupCacheStats() (hits, misses int) { return c.gcache.Stats() }

// SealFunc encrypts an outbox item (outbox.Config.Seal).
type SealFunc = func(context.Context, store.OutboxItem) (store.OutboxItem, error)

// WrapSeal makes every Flush encrypt through wrap, which gets the real
// seal as next: a test makes one conversation's items fail or hang. Items
// are no longer encrypted when queued (sealQueued).
func (c *Client) WrapSeal(wrap func(ctx context.Context, it store.OutboxItem, next SealFunc) (store.OutboxItem, error)) {
	c.sealer.live = nil // no encryption when queued: every item goes through wrap
	c.out = c.newSender(func(ctx context.Context, it store.OutboxItem) (store.OutboxItem, error) {
		return wrap(ctx, it, c.sealer.seal)
	})
}

// Launches returns how many outbox items Flush started (sealed and sent).
func (c *Client) Launches() int { return c.out.Launches() }

// MaxInFlight returns the most Sends one Flush window had in flight.
func (c *Client) MaxInFlight() int { return c.out.MaxInFlight() }

// NewBenchServer is NewTestServer for benchmarks: the per-device send rate
// limit is lifted so that it does not set the pace.
func NewBenchServer(tb testing.TB, domain string) *TestServer {
	cfg := homeserverConfig()
	cfg.RateLimit.PerSecond, cfg.RateLimit.Burst = 1e9, 1e9
	return newTestServer(tb, domain, cfg)
}

// StoreCommits returns how many read-write transactions the device's
// store committed (each one fsync'd commit; benchmarks count them).
func (c *Client) StoreCommits() uint64 { return c.st.Commits() }

// StorePages returns how many pages the device's store wrote in its
// commits (meta and freelist pages included).
func (c *Client) StorePages() int64 {
	pages, _, _ := c.st.WriteStats()
	return pages
}

// StorePeeks returns how many read transactions the device's store ran.
func (c *Client) StorePeeks() uint64 { return c.st.Peeks() }

// DrainInbox prints what the inbox holds past what this Client printed
// (Receive's first step).
func (c *Client) DrainInbox(print func(store.Message) error) (int, error) {
	return c.drainInbox(print, nil)
}

// Accepted counts the Sends the server accepted as a hub (every stored
// and fanned-out message, receipts included).
func (ts *testServer) Accepted() uint64 { return ts.srv.Stats().Accepted }

// Acks returns how many Ack frames the server has read from clients.
func (ts *testServer) Acks() uint64 { return ts.srv.Stats().Acks }

// MailboxState returns a device's mailbox head and durable ack on the server.
func (ts *testServer) MailboxState(t testing.TB, deviceID string) (head, acked uint64) {
	t.Helper()
	err := ts.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		head, acked, err = tx.MailboxState(deviceID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return head, acked
}

// KeyPackageChecks returns how often the device counted its KeyPackages
// left (Flush's check before sending).
func (c *Client) KeyPackageChecks() int64 { return c.kp.counts.Load() }

// StoreOpens returns how often the device's profile file was opened: a
// reopen (the file closed for idleness on a slow machine) forgets what
// the store noted, such as a KeyPackage check.
func (c *Client) StoreOpens() int { return c.st.Opens() }

// KeyPackagesLeft counts the device's unused KeyPackages other than
// last-resort ones.
func (c *Client) KeyPackagesLeft(t testing.TB) int {
	t.Helper()
	n := 0
	if err := c.st.Peek(func(tx *store.Tx) error {
		n = tx.CountKeyPackages(0, func(ref []byte) bool { return tx.Meta(metaLastResort+string(ref)) == nil })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// UseKeyPackages deletes n of the device's unused KeyPackages other than
// last-resort ones, as processing Welcomes through them does.
func (c *Client) UseKeyPackages(t testing.TB, n int) {
	t.Helper()
	if err := c.st.Update(func(tx *store.Tx) error {
		for _, ref := range tx.KeyPackageRefs() {
			if n == 0 {
				break
			}
			if tx.Meta(metaLastResort+string(ref)) != nil {
				continue
			}
			if err := tx.DeleteKeyPackage(ref); err != nil {
				return err
			}
			n--
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
