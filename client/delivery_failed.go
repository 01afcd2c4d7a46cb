package client

import (
	"time"

	"hearth/client/convstate"
	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// EventDeliveryFailed is the inbox event of a hub's notice that one of this
// device's messages could not reach a server before the federation expiry:
// the message's ID, Conversation and Seq name the message, Text the server.
const EventDeliveryFailed = "delivery_failed"

// deliveryFailed turns a MESSAGE_KIND_DELIVERY_FAILED delivery into an
// inbox event (recv prints it). A notice about someone else's message is
// not for this device and is skipped.
func (r *receiver) deliveryFailed(tx *store.Tx, self e2ee.Self, d *wire.Delivery) error {
	if d.GetSender() != self.Address || d.GetFailedServer() == "" || d.GetMessageId() == "" {
		r.log.Warn("skipping a delivery-failed notice not about this device's message", "seq", d.GetSeq(),
			"conversation", d.GetConversationId())
		return nil
	}
	return tx.AddInbox(store.Message{ID: d.GetMessageId(), Conversation: d.GetConversationId(), From: convstate.UserOf(self.Address),
		SentAt: time.UnixMilli(d.GetServerTimeMs()).UTC(), Seq: d.GetConversationSeq(),
		Event: EventDeliveryFailed, Text: d.GetFailedServer()})
}
