package homeserver

import (
	"google.golang.org/protobuf/proto"

	"hearth/homeserver/wire"
)

// Typing and presence pushes go in WebTransport datagrams when the client
// asked for them (Hello.datagram_signals) and the stream is a WebTransport
// one: a burst of deliveries or a media download on the control stream
// then does not hold them up. A push that does not fit in a datagram, or
// that the session cannot send, goes on the stream. Datagrams
// may be lost or reordered, which lossy signals allow.

// MaxSignalDatagram is the largest push sent as one datagram (QUIC
// datagrams carry about 1,100 bytes on a 1,280-byte path MTU).
const MaxSignalDatagram = 1000

// datagramSender is the part of a WebTransport stream
// (homeserver/transport.DatagramConn) this package uses.
type datagramSender interface {
	SendDatagram(b []byte) error
}

type datagramPort struct{ conn datagramSender }

// useDatagrams turns datagram signals on for the session if its stream
// can carry them; it reports whether it did.
func (ss *session) useDatagrams(asked bool) bool {
	dc, ok := ss.rwc.(datagramSender)
	if !asked || !ok {
		return false
	}
	ss.dgram.Store(&datagramPort{conn: dc})
	return true
}

// sendDatagram sends f as one datagram; false means send it on the stream.
func (ss *session) sendDatagram(f *wire.ServerFrame) bool {
	p := ss.dgram.Load()
	if p == nil {
		return false
	}
	b, err := proto.Marshal(f)
	if err != nil || len(b) > MaxSignalDatagram {
		return false
	}
	if err := p.conn.SendDatagram(b); err != nil {
		return false
	}
	ss.s.datagramPushes.Add(1)
	return true
}

// DatagramPushes reports how many typing and presence pushes went out as
// datagrams since the server started.
func (s *Server) DatagramPushes() uint64 { return s.datagramPushes.Load() }
