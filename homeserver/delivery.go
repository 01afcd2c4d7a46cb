package homeserver

import (
	"context"
	"errors"
	"sync"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// Router carries "deliver to device X: new entries up to seq N" from the
// transaction that queued them to the sessions serving X. LocalRouter does
// it in process; a multi-node mode replaces it (DESIGN.md "Scale-out seam").
type Router interface {
	// Notify says the device's mailbox head is now at least head.
	Notify(deviceID string, head uint64)
	// Subscribe returns a channel that receives a token after Notify for the
	// device (tokens coalesce), and a function that ends the subscription.
	Subscribe(deviceID string) (wake <-chan struct{}, cancel func())
}

// EntryNotifier is implemented by Routers that can carry a mailbox entry
// itself (LocalRouter does). send.go calls it only after the transaction
// that wrote the entry has committed.
type EntryNotifier interface {
	// NotifyEntry is Notify(deviceID, seq) for the one new entry at seq,
	// which is durable, handing the entry along. e is shared by every
	// device the message went to and must not be changed; its Seq field
	// is not the device's (seq is).
	NotifyEntry(deviceID string, seq uint64, e *storage.Entry)
}

// EntrySubscriber is implemented by Routers that hand entries to their
// subscribers (LocalRouter does). A pusher then pushes a just-committed
// entry without reading it back (session_handoff.go).
type EntrySubscriber interface {
	// SubscribeEntries calls fn(seq, e) after each NotifyEntry for the
	// device and fn(0, nil) after each Notify (something new, not handed),
	// until cancel is called. fn must not block.
	SubscribeEntries(deviceID string, fn func(seq uint64, e *storage.Entry)) (cancel func())
}

// LocalRouter is the in-process Router.
type LocalRouter struct {
	mu    sync.Mutex
	subs  map[string]map[chan struct{}]struct{}
	fsubs map[string]map[*localSub]struct{}
}

// localSub is one callback subscriber: kick (SubscribeFunc) or hand
// (SubscribeEntries).
type localSub struct {
	kick func()
	hand func(seq uint64, e *storage.Entry)
}

var (
	_ Router          = (*LocalRouter)(nil)
	_ FuncRouter      = (*LocalRouter)(nil)
	_ EntryNotifier   = (*LocalRouter)(nil)
	_ EntrySubscriber = (*LocalRouter)(nil)
)

// NewLocalRouter returns an empty in-process router.
func NewLocalRouter() *LocalRouter {
	return &LocalRouter{subs: map[string]map[chan struct{}]struct{}{}, fsubs: map[string]map[*localSub]struct{}{}}
}

// Notify wakes every subscriber of the device without blocking.
func (r *LocalRouter) Notify(deviceID string, _ uint64) { r.NotifyEntry(deviceID, 0, nil) }

// NotifyEntry wakes every subscriber of the device and hands e (if not
// nil) to those that take entries, without blocking.
func (r *LocalRouter) NotifyEntry(deviceID string, seq uint64, e *storage.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs[deviceID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for sub := range r.fsubs[deviceID] {
		if sub.hand == nil {
			sub.kick()
		} else if e == nil {
			sub.hand(0, nil)
		} else {
			sub.hand(seq, e)
		}
	}
}

// SubscribeFunc registers fn, called (under the router's lock, so it must
// be quick) after each Notify for the device.
func (r *LocalRouter) SubscribeFunc(deviceID string, fn func()) func() {
	return r.subscribe(deviceID, &localSub{kick: fn})
}

// SubscribeEntries registers fn, called (under the router's lock, so it
// must be quick) after each Notify or NotifyEntry for the device.
func (r *LocalRouter) SubscribeEntries(deviceID string, fn func(seq uint64, e *storage.Entry)) func() {
	return r.subscribe(deviceID, &localSub{hand: fn})
}

func (r *LocalRouter) subscribe(deviceID string, sub *localSub) func() {
	r.mu.Lock()
	if r.fsubs[deviceID] == nil {
		r.fsubs[deviceID] = map[*localSub]struct{}{}
	}
	r.fsubs[deviceID][sub] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.fsubs[deviceID], sub)
		if len(r.fsubs[deviceID]) == 0 {
			delete(r.fsubs, deviceID)
		}
		r.mu.Unlock()
	}
}

// Subscribe registers a waker for the device.
func (r *LocalRouter) Subscribe(deviceID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	if r.subs[deviceID] == nil {
		r.subs[deviceID] = map[chan struct{}]struct{}{}
	}
	r.subs[deviceID][ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs[deviceID], ch)
		if len(r.subs[deviceID]) == 0 {
			delete(r.subs, deviceID)
		}
		r.mu.Unlock()
	}
}

// sync starts (or restarts) pushes after a position: the greater of what
// the client says it processed and what it acknowledged, so nothing it
// acknowledged is delivered twice.
func (ss *session) sync(id uint64, m *wire.Sync) {
	const op = "homeserver.Sync"
	var head, acked uint64
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { head, acked, err = tx.MailboxState(ss.deviceID); return err })
	if err != nil {
		ss.writeError(id, internal(op, err))
		return
	}
	if m.GetAfterSeq() > head {
		ss.writeError(id, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "after_seq %d is beyond the mailbox head %d", m.AfterSeq, head))
		return
	}
	start := max(m.GetAfterSeq(), acked)
	ss.stopPush()            // a valid Sync replaces the running one
	p := ss.newPusher(start) // subscribed before the first read: no wake-up can be missed
	ss.answer(id, &wire.ServerFrame{Body: &wire.ServerFrame_SyncOk{SyncOk: &wire.SyncOK{Head: head}}}, nil)
	ss.pushMu.Lock()
	ss.push = p
	ss.pushMu.Unlock()
	p.start() // pushes run on a goroutine only while there is something to push (session_push.go)
}

// delivery turns a mailbox entry into its wire form. A welcome carries the
// epoch it welcomes into, no conversation sequence and the commit's
// GroupInfo (the ratchet tree a Welcome may omit); a delivery-failed
// notice names the sender's message and the unreachable server, no payload.
func delivery(e *storage.Entry) *wire.Delivery {
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

// ack records a cumulative acknowledgement durably, then answers and lets
// the pusher move its window.
func (ss *session) ack(id uint64, m *wire.Ack) {
	const op = "homeserver.Ack"
	up := m.GetUpToSeq()
	wait := ss.s.db.Submit(ss.ctx, func(tx *storage.Tx) error { return tx.Ack(ss.deviceID, up) })
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
			for {
				cur := p.acked.Load()
				if up <= cur || p.acked.CompareAndSwap(cur, up) {
					break
				}
			}
			p.kick() // the window moved
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
	d, err := s.checkAccessToken(ctx, accessToken)
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
		out[i] = delivery(e)
	}
	return out, nil
}
