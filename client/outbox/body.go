package outbox

import (
	"errors"

	"hearth/client/store"
)

// Items with a ready Body (receipts, settings) are sent like messages but
// never enter history.

// dropBody removes a receipt or settings item from the outbox (dropped:
// nothing enters history).
func (o *Sender) dropBody(it store.OutboxItem) error {
	return o.cfg.Store.Update(func(tx *store.Tx) error { return deleteSent(tx, it.ID) })
}

// bodyFailed drops a receipt or settings item that can never be sent:
// the server refused it for good (it answered the Send with an error that
// is not retryable), or this device can no longer send in its
// conversation (Config.Gone). There is nothing for the user to retry, and
// a newer one would supersede it anyway.
func (o *Sender) bodyFailed(it store.OutboxItem, reason error) error {
	o.cfg.Log.Warn("receipt or settings not sent, dropped", "id", it.ID, "conversation", it.Conversation, "err", reason)
	return o.dropBody(it)
}

// failedBodiesIn returns the receipt and settings items a previous Flush
// kept (failItem): each Flush tries them again (retryBodies, in its first
// read of the outbox), while a failed text waits for the user.
func failedBodiesIn(tx *store.Tx) ([]string, error) {
	var failed []string
	items, err := tx.Outbox()
	for _, it := range items {
		if it.Body != nil && it.Failed != "" {
			failed = append(failed, it.ID)
		}
	}
	return failed, err
}

// retryBodies clears the failed mark of the items failedBodiesIn found.
func (o *Sender) retryBodies(failed []string) error {
	return o.cfg.Store.Update(func(tx *store.Tx) error {
		for _, id := range failed {
			cur, err := tx.OutboxItem(id)
			if errors.Is(err, store.ErrNotFound) {
				continue // finished by another run meanwhile
			} else if err != nil {
				return err
			}
			cur.Failed = ""
			if err := tx.UpdateOutbox(cur); err != nil {
				return err
			}
		}
		return nil
	})
}
