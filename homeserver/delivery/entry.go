package delivery

import (
	"hearth/homeserver/wire"
	"hearth/storage"
)

// Delivery turns a mailbox entry into its wire form. A welcome carries the
// epoch it welcomes into, no conversation sequence and the commit's
// GroupInfo (the ratchet tree a Welcome may omit); a delivery-failed
// notice names the sender's message and the unreachable server, no payload.
func Delivery(e *storage.Entry) *wire.Delivery {
	d := &wire.Delivery{Seq: e.Seq, ConversationId: e.ConvID, ConversationSeq: e.ConvSeq, Sender: e.Sender,
		MessageId: e.MessageID, Kind: wire.MessageKind(e.Kind), Epoch: e.Epoch, Payload: e.Payload, ServerTimeMs: e.CreatedMs}
	if e.Welcome {
		d.Kind, d.ConversationSeq, d.Epoch = wire.MessageKind_MESSAGE_KIND_WELCOME, 0, e.Epoch+1
		d.GroupInfo = e.GroupInfo
	}
	if e.FailedServer != "" {
		d.Kind, d.Payload, d.FailedServer = wire.MessageKind_MESSAGE_KIND_DELIVERY_FAILED, nil, e.FailedServer
	}
	return d
}
