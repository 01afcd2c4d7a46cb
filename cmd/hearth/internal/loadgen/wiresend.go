package loadgen

import (
	"context"

	"hearth/client/session"
	"hearth/homeserver/wire"
)

// wireOut is where a wire-mode sender sends: its device's session and the
// captured message it replays.
type wireOut struct {
	dev  *wireDev
	msg  captured
	conn *session.Conn // the connection Sends are started on; nil: ask Live

	pend     []*wirePend // queued, not acknowledged, in order
	nstarted int         // pend[:nstarted] are in flight on conn
}

// wirePend is one queued wire Send.
type wirePend struct {
	id   string
	wait func(context.Context) (*wire.ServerFrame, error)
}

func newWireOut(d *wireDev, c captured) *wireOut { return &wireOut{dev: d, msg: c} }

// queueWire queues message seq (due at t) and starts it at once when the
// window has room. Called with s.mu held.
func (s *sender) queueWireLocked(id string) {
	s.w.pend = append(s.w.pend, &wirePend{id: id})
	s.startWireLocked()
}

// startWireLocked starts the queued Sends that fit in the window, in
// order, on the current connection. Called with s.mu held.
func (s *sender) startWireLocked() {
	o := s.w
	for o.nstarted < len(o.pend) && o.nstarted < wireWindow {
		if o.conn == nil || o.conn.Err() != nil {
			o.conn = nil
			return
		}
		p := o.pend[o.nstarted]
		wait, err := o.conn.Start(context.Background(), "loadgen.Send", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{
			ConversationId: o.msg.conv, MessageId: p.id, Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION,
			Epoch: o.msg.epoch, Payload: o.msg.payload}}})
		if err != nil {
			o.conn = nil
			return
		}
		p.wait = wait
		o.nstarted++
	}
}

// flushWire waits until every message queued so far is acknowledged,
// keeping the window full. A refusal or a lost connection restarts every
// unacknowledged Send (same message ids: the server answers a retry of an
// accepted one from its dedup record) and returns false.
func (s *sender) flushWire(ctx context.Context) bool {
	s.mu.Lock()
	n := uint64(len(s.sched))
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if s.acked >= n {
			s.mu.Unlock()
			return true
		}
		o := s.w
		if o.nstarted == 0 {
			s.mu.Unlock()
			c, err := o.dev.sess.Live(ctx)
			s.mu.Lock()
			if err != nil {
				s.errs++
				s.mu.Unlock()
				return false
			}
			o.conn = c
			s.startWireLocked()
			if o.nstarted == 0 {
				s.errs++
				s.mu.Unlock()
				return false
			}
		}
		wait := o.pend[0].wait
		s.mu.Unlock()
		_, err := wait(ctx)
		at := s.now()
		s.mu.Lock()
		if err != nil {
			s.errs++
			for _, p := range o.pend[:o.nstarted] {
				p.wait = nil
			}
			o.nstarted = 0
			s.mu.Unlock()
			return false
		}
		o.pend[0] = nil
		o.pend = o.pend[1:]
		o.nstarted--
		s.acked++
		s.ackLat = append(s.ackLat, at.Sub(s.sched[s.acked-1]))
		s.startWireLocked()
		s.mu.Unlock()
	}
}
