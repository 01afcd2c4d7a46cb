package session

import (
	"sync"
)

// Round trips are counted, not timed: every request written on a Conn gets
// a depth, one more than the deepest response the Conn had received when
// the request was written (the connection's handshake counts as the first
// responses: Conn.base). A request written while earlier ones are still
// unanswered (pipelined) therefore shares their depth, and a request
// written after an answer arrived waits one more round trip. The depth of
// a response is the number of round trips the client waited for, from the
// start of the dial, on its critical path, whatever the delay, loss or CPU
// time between them.

// handshaker is implemented by a transport connection (client/transport's
// *Conn) that knows how many round trips its dial waited for and over
// which protocol.
type handshaker interface {
	Protocol() string
	HandshakeRoundTrips() int
}

// dialFacts is what else a transport connection may tell about its dial.
type dialFacts interface {
	Raced() bool   // the WebSocket was dialled beside a slow WebTransport
	Resumed() bool // TLS session resumption
}

// OpTrips is what a Meter knows about one operation (the op name of Call).
type OpTrips struct {
	Count int `json:"count"` // responses received
	// RoundTrip is the depth of the first response: round trips since the
	// start of its connection's dial.
	RoundTrip int `json:"round_trip"`
	// MaxRoundTrip is the largest depth of any of its responses.
	MaxRoundTrip int `json:"max_round_trip"`
}

// ConnTrips describes one connection a Meter saw.
type ConnTrips struct {
	Protocol  string `json:"protocol,omitempty"` // webtransport, websocket; empty for a test pipe
	Handshake int    `json:"handshake_round_trips"`
	Raced     bool   `json:"raced,omitempty"`
	Resumed   bool   `json:"tls_resumed,omitempty"`
	// RoundTrips is the deepest response received on it: the round trips
	// its user waited for, the handshake included.
	RoundTrips int `json:"round_trips"`
	Requests   int `json:"requests"`
}

// Stats is a snapshot of a Meter.
type Stats struct {
	// RoundTrips sums the connections' round trips (they are sequential in
	// a CLI run; overlapping connections would be over-counted).
	RoundTrips  int                `json:"round_trips"`
	Requests    int                `json:"requests"`
	Connections []ConnTrips        `json:"connections"`
	Ops         map[string]OpTrips `json:"ops"`
	// Unlisted counts the connections beyond the first maxConnRecords,
	// which a long-lived process makes as it reconnects: they are counted
	// in Ops but neither listed nor summed in RoundTrips and Requests.
	Unlisted int `json:"connections_unlisted,omitempty"`
}

// maxConnRecords bounds the connections a Meter lists, so that a process
// that runs for days (recv --follow, bench) does not grow with them.
const maxConnRecords = 64

// Meter collects the round trips of the Conns attached to it. It is safe
// for concurrent use; the zero value is ready.
type Meter struct {
	mu       sync.Mutex
	conns    []*ConnTrips
	unlisted int
	ops      map[string]OpTrips
}

// DefaultMeter is the process-wide meter every NewConn attaches to (the
// CLI's --stats prints it).
var DefaultMeter = &Meter{}

// attach registers a new connection and returns its record.
func (m *Meter) attach(rw any) *ConnTrips {
	ct := &ConnTrips{}
	if h, ok := rw.(handshaker); ok {
		ct.Protocol, ct.Handshake = h.Protocol(), h.HandshakeRoundTrips()
		ct.RoundTrips = ct.Handshake
	}
	if f, ok := rw.(dialFacts); ok {
		ct.Raced, ct.Resumed = f.Raced(), f.Resumed()
	}
	m.mu.Lock()
	if len(m.conns) < maxConnRecords {
		m.conns = append(m.conns, ct)
	} else {
		m.unlisted++
	}
	m.mu.Unlock()
	return ct
}

func (m *Meter) started(ct *ConnTrips) {
	m.mu.Lock()
	ct.Requests++
	m.mu.Unlock()
}

// answered records that op's response arrived at depth on ct.
func (m *Meter) answered(ct *ConnTrips, op string, depth int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ct.RoundTrips = max(ct.RoundTrips, depth)
	if m.ops == nil {
		m.ops = make(map[string]OpTrips)
	}
	o, seen := m.ops[op]
	if !seen {
		o.RoundTrip = depth
	}
	o.Count++
	o.MaxRoundTrip = max(o.MaxRoundTrip, depth)
	m.ops[op] = o
}

// Stats returns what the meter counted so far.
func (m *Meter) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{Connections: []ConnTrips{}, Ops: make(map[string]OpTrips, len(m.ops)), Unlisted: m.unlisted}
	for _, ct := range m.conns {
		s.Connections = append(s.Connections, *ct)
		s.RoundTrips += ct.RoundTrips
		s.Requests += ct.Requests
	}
	for k, v := range m.ops {
		s.Ops[k] = v
	}
	return s
}
