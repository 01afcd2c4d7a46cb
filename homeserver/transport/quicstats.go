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
	mu    sync.Mutex
	live  map[*quic.Conn]struct{}
	ended PacketCounts
}

// track counts c from now until it ends.
func (p *packetCounter) track(c *quic.Conn) {
	p.mu.Lock()
	if p.live == nil {
		p.live = map[*quic.Conn]struct{}{}
	}
	p.live[c] = struct{}{}
	p.mu.Unlock()
	context.AfterFunc(c.Context(), func() {
		st := c.ConnectionStats()
		p.mu.Lock()
		delete(p.live, c)
		p.ended.Sent += st.PacketsSent
		p.ended.Received += st.PacketsReceived
		p.mu.Unlock()
	})
}

func (p *packetCounter) counts() PacketCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.ended
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
