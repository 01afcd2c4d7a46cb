package session

import (
	"context"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/wire"
)

// Typing and presence pushes come in WebTransport datagrams when the
// connection is a WebTransport one: the session asks for it in Hello
// (datagram_signals) and reads datagrams beside the control stream. The
// server still sends a push that does not fit in a datagram on the stream.

// datagramReader is what a WebTransport control stream
// (client/transport.Conn) offers beside the stream.
type datagramReader interface {
	Protocol() string // "webtransport" or "websocket"
	ReceiveDatagram(ctx context.Context) ([]byte, error)
}

// datagramsOf returns rw's datagram side, or nil when it has none.
func datagramsOf(rw any) datagramReader {
	if dr, ok := rw.(datagramReader); ok && dr.Protocol() == "webtransport" {
		return dr
	}
	return nil
}

// readDatagrams hands the signals arriving as datagrams to OnSignal until
// ctx ends or the connection does.
func (s *Session) readDatagrams(ctx context.Context, dr datagramReader) {
	for {
		b, err := dr.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		s.signalDatagram(b)
	}
}

// signalDatagram decodes one datagram; anything but a typing or presence
// push is ignored.
func (s *Session) signalDatagram(b []byte) {
	var f wire.ServerFrame
	if proto.Unmarshal(b, &f) != nil || f.GetId() != 0 {
		return
	}
	switch f.GetBody().(type) {
	case *wire.ServerFrame_Typing, *wire.ServerFrame_Presence, *wire.ServerFrame_PresenceList:
		s.datagramSignals.Add(1)
		if s.cfg.OnSignal != nil {
			s.cfg.OnSignal(&f)
		}
	}
}
