package homeserver

import (
	"context"
	"errors"

	"hearth/homeserver/delivery"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// sync starts (or restarts) pushes after a position: the greater of what
// the client says it processed and what it acknowledged, so nothing it
// acknowledged is delivered twice.
func (ss *session) sync(id uint64, m *wire.Sync) {
	const op = "homeserver.Sync"
	var head, acked, last uint64
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) {
		if head, acked, err = tx.MailboxState(ss.deviceID); err != nil {
			return err
		}
		last, err = tx.LastMailboxEntry(ss.deviceID)
		return err
	})
	if err != nil {
		ss.writeError(id, internal(op, err))
		return
	}
	if m.GetAfterSeq() > head {
		ss.writeError(id, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "after_seq %d is beyond the mailbox head %d", m.AfterSeq, head))
		return
	}
	start := max(m.GetAfterSeq(), acked)
	ss.stopPush() // a valid Sync replaces the running one
	// Subscribed before the first read: no wake-up can be missed.
	p := ss.s.dlv.NewPusher(ss.ctx, ss.deviceID, start, func(fs []*wire.ServerFrame) error {
		err := ss.fw.write(fs...)
		if err == nil {
			ss.s.ctr.delivered.Add(uint64(len(fs)))
		}
		return err
	}, ss.cancel)
	// The head announced is the last entry there is to push: after a
	// restore the head counter sits past a gap that holds no entries
	// (storage.SkipRestoredSequences), and a client waits until it has
	// processed up to what is announced.
	ss.answer(id, &wire.ServerFrame{Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: max(start, last)}}}, nil)
	ss.pushMu.Lock()
	ss.push = p
	ss.pushMu.Unlock()
	p.Start() // pushes run on a goroutine only while there is something to push (homeserver/delivery)
}

// ack records a cumulative acknowledgement durably, then answers. The
// pusher's window moves as soon as the Ack is read (up to what it pushed:
// Pusher.AckReceived), so a draining receiver does not wait for each
// ack's fsync; a reconnect resumes from the durable ack.
//
// An Ack read is recorded even when the stream ends right after it: a
// client writes its last Ack as it closes (client/session/ack.go), and
// the session's context ends with the stream, before the writer runs.
func (ss *session) ack(id uint64, m *wire.Ack) {
	const op = "homeserver.Ack"
	up := m.GetUpToSeq()
	ss.s.ctr.acks.Add(1)
	wait := ss.s.db.SubmitAck(context.WithoutCancel(ss.ctx), ss.deviceID, up)
	if p := ss.currentPush(); p != nil {
		p.AckReceived(up) // the window moves now; the durable ack follows
	}
	ss.later(func() {
		err := wait()
		if errors.Is(err, storage.ErrNotFound) {
			ss.writeError(id, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "ack %d is beyond the mailbox head", up))
			return
		} else if err != nil {
			ss.writeError(id, internal(op, err))
			return
		}
		if p := ss.currentPush(); p != nil {
			p.Ack(up)
		}
		if id != 0 {
			ss.answer(id, okFrame(), nil)
		}
	})
}

// History returns this device's mailbox entries of one conversation,
// newest first, with seq < before (0: from the newest); limit defaults to
// 50 and is capped at 500. It is the REST GET /hearth/v1/messages.
func (s *Server) History(ctx context.Context, accessToken, conversationID string, before uint64, limit int) ([]*wire.Delivery, error) {
	const op = "homeserver.History"
	d, err := s.auth.checkAccessToken(ctx, accessToken)
	if err != nil {
		return nil, wire.E(op, err)
	}
	if d.Status != storage.DeviceActive {
		return nil, wire.Errorf(op, wire.Code_CODE_PENDING_APPROVAL, "device waits for approval")
	}
	if _, err := s.hub.CheckConversationID(op, conversationID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	var es []*storage.Entry
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) {
		es, err = tx.History(d.ID, conversationID, before, limit)
		return err
	}); err != nil {
		return nil, internal(op, err)
	}
	out := make([]*wire.Delivery, len(es))
	for i, e := range es {
		out[i] = delivery.Delivery(e)
	}
	return out, nil
}

// stopPush ends the running Sync, if any, and waits for it.
func (ss *session) stopPush() {
	ss.pushMu.Lock()
	p := ss.push
	ss.push = nil
	ss.pushMu.Unlock()
	if p != nil {
		p.Stop()
	}
}

func (ss *session) currentPush() *delivery.Pusher {
	ss.pushMu.Lock()
	defer ss.pushMu.Unlock()
	return ss.push
}
