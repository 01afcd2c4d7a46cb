package client

import (
	"fmt"

	"hearth/client/store"
)

// Unread returns how many messages of other users conversation conv holds
// past this user's read mark (what a conversations list shows as unread):
// the mark moves with MarkRead on any of this user's devices. It reads
// only the profile store.
func (c *Client) Unread(conv string) (int, error) {
	me, err := c.user()
	if err != nil {
		return 0, err
	}
	n := 0
	err = c.st.View(func(tx *store.Tx) error {
		st, err := loadReceipts(tx, conv)
		if err != nil {
			return err
		}
		read := st[me].Read
		return tx.EachHistory(conv, func(m store.Message) error {
			if m.Seq > read && m.Event == "" && m.From != me {
				n++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("client.Unread %s: %w", conv, err)
	}
	return n, nil
}
