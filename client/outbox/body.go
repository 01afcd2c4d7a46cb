package outbox

import (
	"errors"

	"hearth/client/store"
)

// Items with a ready Body (receipts, settings) are sent like messages but
// never enter history.

// bodySent finishes an accepted receipt or settings item: it leaves the
// outbox and nothing enters history.
func (o *Sender) bodySent(it store.OutboxItem) error {
	return o.cfg.Store.Update(func(tx *store.Tx) error {
		if err := tx.DeleteOutbox(it.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
}

// bodyFailed drops a receipt or settings item refused for good (this
// device left the conversation): there is nothing for the user to retry,
// and a newer one supersedes it anyway.
func (o *Sender) bodyFailed(it store.OutboxItem, reason error) error {
	o.cfg.Log.Info("receipt or settings not sent, dropped", "id", it.ID, "conversation", it.Conversation, "err", reason)
	return o.bodySent(it)
}
