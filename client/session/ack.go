package session

import (
	"context"
	"sync"
	"time"
)

// Acks are coalesced. Each Ack the server reads costs it a storage write
// and, when nothing else goes out with it, a QUIC packet each way (the
// Ack, and the server's ACK-only packet for it). So the session does not
// write an Ack for every batch it processes. It owes one, and pays it:
//
//   - with the next frame it writes anyway (a Send, a Sync, any request):
//     the Ack goes in front of it, in the same stream write (Conn.write);
//   - after DefaultAckDelay (Config.AckDelay) when nothing was written;
//   - at once when ackAtOnce entries are owed, so that a receiver that
//     holds its Ack never stalls the server's pushes;
//   - at once when the session closes, and on the next connection when
//     the one it was owed on broke.
//
// An Ack only ever covers deliveries whose processing is durable on the
// device, and a reconnect resumes from the device's own position (Sync's
// after_seq), so an Ack lost with its connection is delivered twice to
// nobody; it only leaves the server's record of the device behind until
// the next one.

// DefaultAckDelay is how long a processed delivery waits for something
// else to carry its Ack. It is below quic-go's max_ack_delay (25 ms): the
// device's QUIC stack acknowledges the Delivery's packet by then anyway,
// and an Ack written first rides in that packet instead of costing one
// of its own. A longer delay coalesces more Acks under dense traffic but
// adds that ACK-only packet for every delivery that arrives alone.
const DefaultAckDelay = 20 * time.Millisecond

// ackAtOnce is how many owed entries are acknowledged without waiting. The
// server pushes at most its delivery window of unacknowledged entries
// (homeserver Config.DeliveryWindow, 256, which `hearth serve` does not
// change): a quarter of it owed leaves the pusher room for three quarters
// more while the Ack travels. It is also a full batch (pushBatch), so a
// backlog drain acknowledges each batch as it did before coalescing. A
// server with a window below it is not stalled for good: the delay pays.
const ackAtOnce = pushBatch

// closeFlush bounds the write of the Ack owed when the session closes.
const closeFlush = time.Second

// acker holds the session's owed cumulative Ack across its connections.
type acker struct {
	delay time.Duration // <= 0: every Ack at once

	mu      sync.Mutex
	owed    uint64 // highest processed seq not yet written in an Ack; 0: none
	count   int    // entries processed since the last Ack written
	writing int    // Acks taken and being written (take, then written)
	conn    *Conn  // the authenticated connection Acks go on; nil: none
	timer   *time.Timer
	armed   bool // timer runs for the owed Ack
}

// owe records that the entries up to seq (n of them) were durably
// processed on c, and writes the Ack now when it must not wait (ackAtOnce
// entries owed, no delay, or ctx ended: the session is closing);
// otherwise the timer or the next frame written carries it.
func (a *acker) owe(ctx context.Context, c *Conn, seq uint64, n int) error {
	a.mu.Lock()
	a.owed = max(a.owed, seq)
	a.count += n
	if ctx.Err() != nil { // the session is closing
		a.mu.Unlock()
		a.flush(c)
		return nil
	}
	if a.delay > 0 && a.count < ackAtOnce {
		if !a.armed {
			a.armed = true
			if a.timer == nil {
				a.timer = time.AfterFunc(a.delay, a.fire)
			} else {
				a.timer.Reset(a.delay)
			}
		}
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	return c.writeAck(ctx)
}

// fire writes the owed Ack when its delay has passed, on the connection
// it is owed on; with none up it stays owed for the next (attach).
func (a *acker) fire() {
	a.mu.Lock()
	a.armed = false
	c := a.conn
	a.mu.Unlock()
	if c != nil {
		c.writeAck(context.Background()) // an error fails c; the Ack stays owed (written)
	}
}

// take returns the owed Ack for a write on c (0: none, or c is not the
// connection Acks go on) and clears it; the caller writes it, then calls
// written.
func (a *acker) take(c *Conn) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != c || a.owed == 0 {
		return 0
	}
	seq := a.owed
	a.owed, a.count = 0, 0
	a.writing++
	if a.armed {
		a.armed = false
		a.timer.Stop()
	}
	return seq
}

// written ends the write of an Ack take returned; one that failed is
// owed again, on the next connection.
func (a *acker) written(seq uint64, err error) {
	a.mu.Lock()
	a.writing--
	if err != nil {
		a.owed = max(a.owed, seq)
	}
	a.mu.Unlock()
}

// attach makes c, authenticated and synced, the connection Acks go on,
// and writes at once an Ack owed from a connection that broke. c.acks
// must be a (set before c was used).
func (a *acker) attach(ctx context.Context, c *Conn) error {
	a.mu.Lock()
	a.conn = c
	owed := a.owed
	a.mu.Unlock()
	if owed == 0 {
		return nil
	}
	return c.writeAck(ctx)
}

// detach stops writing Acks on c; what is owed waits for the next
// connection.
func (a *acker) detach(c *Conn) {
	a.mu.Lock()
	if a.conn == c {
		a.conn = nil
	}
	a.mu.Unlock()
}

// flush writes the owed Ack on c at once, waiting at most closeFlush:
// the session is closing.
//
// An Ack another goroutine took is being written under the write slot,
// which writeAck waits for: a closer that flushes before closing c never
// cuts that write short.
func (a *acker) flush(c *Conn) {
	a.mu.Lock()
	busy := a.conn == c && (a.owed > 0 || a.writing > 0)
	a.mu.Unlock()
	if !busy {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeFlush)
	defer cancel()
	c.writeAck(ctx)
}
