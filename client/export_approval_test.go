package client

import (
	"context"
	"testing"

	"hearth/storage"
)

// Welcomes counts the Welcomes waiting in the server mailbox of device
// (user@domain/DEVICE's DEVICE).
func (ts *testServer) Welcomes(t *testing.T, deviceID string) int {
	t.Helper()
	n := 0
	err := ts.db.Read(context.Background(), func(tx *storage.Tx) error {
		es, err := tx.Entries(deviceID, 0, 100000)
		for _, e := range es {
			if e.Welcome {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
