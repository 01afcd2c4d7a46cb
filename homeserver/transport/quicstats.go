package transport

import (
	"context"
	"sync"

	"github.com/quic-go/quic-go"
)

// PacketCounts are the QUIC packets of every connection the server
// accepted (client sessions over WebTransport and native QUIC, REST over
// HTTP/3, federation), since it started: what the client protocol costs
// in packets per message under load (docs/benchmarks.md).
type PacketCounts struct {
	Sent     uint64
	Received uint64
}

// packetCounter sums the packet counts of live and ended connections.
type packetCounter struct {
	mu   sync.Mutex
	live map[*quic.Conn]struct{}
	done PacketCounts // of the connections that ended
}

// track counts c from now until it ends.
func (p *packetCounter) track(c *quic.Conn) {
	p.add(c)
	context.AfterFunc(c.Context(), func() { p.ended(c) })
}

// add counts c from now until ended is called for it: for connections
// whose end the caller sees (a native session's, nativeConn.Close), which
// then need no hook on their context.
func (p *packetCounter) add(c *quic.Conn) {
	p.mu.Lock()
	if p.live == nil {
		p.live = map[*quic.Conn]struct{}{}
	}
	p.live[c] = struct{}{}
	p.mu.Unlock()
}

// ended moves c's final counts to the sum of ended connections; c must be
// closed (its counts no longer move).
func (p *packetCounter) ended(c *quic.Conn) {
	st := c.ConnectionStats()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.live[c]; !ok {
		return
	}
	delete(p.live, c)
	p.done.Sent += st.PacketsSent
	p.done.Received += st.PacketsReceived
}

func (p *packetCounter) counts() PacketCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.done
	for c := range p.live {
		st := c.ConnectionStats()
		n.Sent += st.PacketsSent
		n.Received += st.PacketsReceived
	}
	return n
}

// QUICPackets returns the QUIC packets sent and received since the
// server started, over every connection it accepted.
func (s *Server) QUICPackets() PacketCounts { return s.packets.counts() }
