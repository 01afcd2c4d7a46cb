package homeserver

import (
	"context"
	"sync/atomic"
	"time"

	"hearth/homeserver/admin"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// counters are the session layer's running totals: atomic adds on the hot
// path, read by Stats (metrics, admin status).
type counters struct {
	accepted  atomic.Uint64
	delivered atomic.Uint64
	acks      atomic.Uint64          // Ack frames read from clients
	refused   [maxCode]atomic.Uint64 // by wire code
	// 0-RTT (early.go): requests acted upon before their connection's
	// handshake completed, and requests held until it did.
	earlyServed, earlyHeld atomic.Uint64

	// A message's stages through the server (admin.Status.SendStages).
	receiveToCommit, commitToAck, commitToPush, receiveToPushRead admin.LatencyRecorder
	receiveToWriter                                               admin.LatencyRecorder
	writer                                                        *admin.WriterStages // nil: not timed
}

// pushLatency is delivery.Config.PushLatency.
func (c *counters) pushLatency(handed bool, d time.Duration) {
	if handed {
		c.commitToPush.Observe(d)
	} else {
		c.receiveToPushRead.Observe(d)
	}
}

// stages returns the stage histograms since start.
func (c *counters) stages() map[string]admin.Histogram {
	m := map[string]admin.Histogram{
		admin.StageReceiveToCommit:   c.receiveToCommit.Snapshot(),
		admin.StageReceiveToWriter:   c.receiveToWriter.Snapshot(),
		admin.StageCommitToAck:       c.commitToAck.Snapshot(),
		admin.StageCommitToPush:      c.commitToPush.Snapshot(),
		admin.StageReceiveToPushRead: c.receiveToPushRead.Snapshot(),
	}
	if c.writer != nil {
		m[admin.StageWriterTransaction] = c.writer.Transaction.Snapshot()
		m[admin.StageWriterFsync] = c.writer.Fsync.Snapshot()
	}
	return m
}

// maxCode bounds the wire codes counted; a later code counts as INTERNAL.
const maxCode = 64

func (c *counters) refuse(code wire.Code) {
	if code < 0 || int(code) >= maxCode {
		code = wire.Code_CODE_INTERNAL
	}
	c.refused[code].Add(1)
}

// Stats are the running totals since the server started.
type Stats struct {
	// Accepted counts sends of local devices that this server, as the
	// conversation's hub, committed (a retry answered from its dedup
	// record is not counted again).
	Accepted uint64
	// Delivered counts mailbox entries pushed to local devices' sessions.
	Delivered uint64
	// Acks counts the Ack frames read from client sessions (each is a
	// storage write; clients coalesce them, client/session/ack.go).
	Acks uint64
	// Refused counts error answers on client sessions by wire code name
	// (CODE_RATE_LIMITED, CODE_BAD_REQUEST, …); codes never sent are absent.
	Refused map[string]uint64
	// EarlyServed counts requests acted upon before their native QUIC
	// connection's handshake completed (0-RTT data, replay-safe ones
	// only); EarlyHeld counts requests that arrived then and were held
	// until it completed.
	EarlyServed, EarlyHeld uint64
	// Stages are the latency histograms of a message's stages through
	// the server (admin.StageReceiveToCommit, …).
	Stages map[string]admin.Histogram
}

// Stats returns the running totals.
func (s *Server) Stats() Stats { return s.ctr.stats() }

func (c *counters) stats() Stats {
	st := Stats{Accepted: c.accepted.Load(), Delivered: c.delivered.Load(), Acks: c.acks.Load(), Refused: map[string]uint64{}, Stages: c.stages(),
		EarlyServed: c.earlyServed.Load(), EarlyHeld: c.earlyHeld.Load()}
	for i := range c.refused {
		if n := c.refused[i].Load(); n > 0 {
			st.Refused[wire.Code(i).String()] = n
		}
	}
	return st
}

// Figures computes the database totals monitoring shows (storage.Figures).
func (s *Server) Figures(ctx context.Context) (storage.Figures, error) {
	var f storage.Figures
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { f, err = tx.Figures(); return err })
	return f, err
}
