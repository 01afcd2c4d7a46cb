package client

import (
	"context"
	"strings"
	"testing"

	"hearth/storage"
)

// AdminRevoke revokes a device the way `hearth admin device revoke` does.
func (ts *testServer) AdminRevoke(t testing.TB, user, deviceID string) {
	t.Helper()
	if err := ts.srv.DeviceRevoke(context.Background(), user, deviceID); err != nil {
		t.Fatal(err)
	}
}

// RosterHas reports whether the hub lists deviceID as a member of any
// conversation of user (by local name).
func (ts *testServer) RosterHas(t testing.TB, user, deviceID string) bool {
	t.Helper()
	found := false
	err := ts.db.Read(context.Background(), func(tx *storage.Tx) error {
		u, err := tx.UserByName(user)
		if err != nil {
			return err
		}
		convs, err := tx.ConversationsOfUser(u.ID)
		if err != nil {
			return err
		}
		for _, cv := range convs {
			ms, err := tx.Members(cv.ID)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if strings.HasSuffix(m.Address, "/"+deviceID) {
					found = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// HoldRevokedDrop keeps this client from dropping admin-revoked devices
// from its user's signed list in the background (as if the drop had not
// run yet), so a test can act before it.
func (c *Client) HoldRevokedDrop() {
	c.devs.mu.Lock()
	c.devs.dropping = true
	c.devs.mu.Unlock()
}

// Reconcile runs the roster check of conv once (roster.Reconcile).
func (c *Client) Reconcile(ctx context.Context, conv string) error {
	return c.rosters.Reconcile(ctx, conv)
}
