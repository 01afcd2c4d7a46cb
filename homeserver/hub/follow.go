package hub

import (
	"errors"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Delivered is one message a remote hub accepted, as its DELIVER names it.
type Delivered struct {
	Conv       identity.ConversationID
	Sender     string // device address
	MessageID  string
	Kind       wire.MessageKind
	Epoch      uint64
	Payload    []byte
	Welcome    []byte
	GroupInfo  []byte
	Seq        uint64 // the hub's conversation sequence
	PrevSeq    uint64 // the sequence of the DELIVER before it to this server
	CreatedMs  int64  // when the hub accepted it
	Recipients []string
	// A commit's roster change, as the hub accepted it.
	AddDevices, RemoveDevices []string
}

// ApplyDeliver appends a remote hub's accepted message to this server's
// copy of the conversation and to its local recipients' mailboxes, in
// conversation order: it applies only on top of the message it names as
// previous (CODE_UNAVAILABLE until that one is here). A message applied
// before is ignored. It returns the new mailbox heads.
func (h *Hub) ApplyDeliver(op string, tx *storage.Tx, d *Delivered, nowMs int64) ([]storage.Head, error) {
	convID := d.Conv.String()
	c, err := tx.Conversation(convID)
	if errors.Is(err, storage.ErrNotFound) {
		c = &storage.Conversation{ID: convID, Creator: d.Sender, Epoch: d.Epoch, LastSeq: d.PrevSeq, CreatedMs: nowMs}
		if err := tx.InsertConversation(c, nil, nil); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	switch {
	case d.Seq <= c.LastSeq:
		return nil, nil // applied before
	case d.PrevSeq > c.LastSeq:
		// A gap: wait for the earlier message, unless this server was
		// restored from a backup and has not applied anything since: it
		// lost what came after the backup, and the hub will not send it
		// again. Its devices that received those messages keep them.
		at, err := tx.RestoredFollowerSeq(convID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if err != nil || at != c.LastSeq {
			return nil, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "waiting for an earlier message of %s", convID)
		}
		h.log.Warn("restored follower: skipping the messages lost with the restore", "conversation", convID, "from", c.LastSeq+1, "to", d.PrevSeq)
		if err := tx.ForgetRestoredFollower(convID); err != nil {
			return nil, err
		}
	}
	// d.PrevSeq < c.LastSeq < d.Seq: the hub names as previous a message
	// before one applied here. A hub sends to each server in order, so this
	// only happens after the hub was restored from a backup: it forgot what
	// it sent after the backup and moved its sequences past a gap
	// (storage.SkipRestoredSequences). Waiting would wait for ever; the
	// message is new, so it applies.
	entry := &storage.LogEntry{ConvID: c.ID, Seq: d.Seq, Sender: d.Sender, MessageID: d.MessageID,
		Kind: int(d.Kind), Epoch: d.Epoch, Payload: d.Payload, Welcome: d.Welcome, GroupInfo: d.GroupInfo,
		CreatedMs: d.CreatedMs}
	if err := tx.AppendLog(entry); err != nil {
		return nil, err
	}
	var heads []storage.Head
	for _, r := range d.Recipients {
		if heads, err = h.appendLocal(tx, c.ID, r, d.Seq, false, nowMs, heads); err != nil {
			return nil, err
		}
	}
	epoch := c.Epoch
	if d.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT {
		epoch = d.Epoch + 1
		for _, r := range d.RemoveDevices {
			if da, err := identity.ParseDevice(r); err == nil && da.Domain() == h.cfg.Domain {
				if err := tx.RemoveMember(c.ID, r); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return nil, err
				}
			}
		}
		for _, r := range d.AddDevices {
			da, err := identity.ParseDevice(r)
			if err != nil || da.Domain() != h.cfg.Domain {
				continue
			}
			if err := tx.AddMember(c.ID, storage.Member{Address: r, DeviceID: da.Device}, epoch); err != nil && !errors.Is(err, storage.ErrConflict) {
				return nil, err
			}
			if len(d.Welcome) > 0 {
				if heads, err = h.appendLocal(tx, c.ID, r, d.Seq, true, nowMs, heads); err != nil {
					return nil, err
				}
			}
		}
	}
	// A commit's GroupInfo replaces the follower's copy (none: cleared, never
	// left stale): a device here that fell out of step rejoins from it.
	commit := d.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT
	return heads, tx.AdvanceConversation(c.ID, epoch, d.GroupInfo, d.Seq, commit)
}

// localDevice returns the active local device at addr; nil when it is not
// one (unparsable, unknown, of another user, not active).
func localDevice(tx *storage.Tx, addr string) (*storage.Device, error) {
	da, err := identity.ParseDevice(addr)
	if err != nil {
		return nil, nil
	}
	d, err := tx.Device(da.Device)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (d.UserName != da.User.Local || d.Status != storage.DeviceActive)) {
		return nil, nil
	}
	return d, err
}

// appendLocal appends to the mailbox of local device address addr; an
// unknown or revoked device is skipped (logged).
func (h *Hub) appendLocal(tx *storage.Tx, convID, addr string, convSeq uint64, welcome bool, now int64, heads []storage.Head) ([]storage.Head, error) {
	d, err := localDevice(tx, addr)
	if err != nil {
		return heads, err
	}
	if d == nil {
		h.log.Info("federation: delivery for an unknown or inactive device skipped", "conversation", convID, "device", addr)
		return heads, nil
	}
	hd, err := tx.AppendMailbox(d.ID, convID, convSeq, welcome, now)
	if errors.Is(err, storage.ErrNotFound) {
		return heads, nil // no mailbox yet
	} else if err != nil {
		return heads, err
	}
	return append(heads, hd), nil
}

// Failed names a message that could not reach a server.
type Failed struct {
	Conv      string
	Sender    string // the device that sent it
	MessageID string
	Seq       uint64 // its conversation sequence
	Server    string // the server it did not reach
}

// AppendNotice puts the notice that a message did not reach f.Server into
// its sending device's mailbox. A device that is gone is logged and
// skipped (there is nobody left to tell): ok is false then.
func (h *Hub) AppendNotice(tx *storage.Tx, f *Failed, nowMs int64) (head storage.Head, ok bool, err error) {
	if _, err := identity.ParseDevice(f.Sender); err != nil {
		return storage.Head{}, false, nil
	}
	d, err := localDevice(tx, f.Sender)
	if err != nil {
		return storage.Head{}, false, err
	}
	if d == nil {
		h.log.Warn("federation: delivery-failed notice for an unknown or inactive device dropped", "conversation", f.Conv, "device", f.Sender)
		return storage.Head{}, false, nil
	}
	head, err = tx.AppendMailboxNotice(d.ID, f.Conv, f.Seq, f.MessageID, f.Sender, f.Server, nowMs)
	if errors.Is(err, storage.ErrNotFound) {
		h.log.Warn("federation: delivery-failed notice for a device without a mailbox dropped", "conversation", f.Conv,
			"device", f.Sender, "conversation_seq", f.Seq)
		return storage.Head{}, false, nil
	} else if err != nil {
		return storage.Head{}, false, err
	}
	h.log.Info("federation: sender told of an undeliverable message", "conversation", f.Conv, "device", f.Sender,
		"conversation_seq", f.Seq, "server", f.Server)
	return head, true, nil
}
