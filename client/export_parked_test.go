package client

import (
	"testing"

	"hearth/client/store"
)

// Parking test hooks for package client_test.

// Parked returns how many deliveries of conv are parked (0: not parked).
func (c *Client) Parked(t *testing.T, conv string) int {
	t.Helper()
	n := 0
	err := c.st.View(func(tx *store.Tx) error {
		if isParked(tx, conv) {
			n = len(tx.MetaNames(parkQueuePref + conv + "/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
