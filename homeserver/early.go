package homeserver

import "hearth/homeserver/wire"

// 0-RTT: a native QUIC client resuming a TLS session sends its first
// frames (Hello, Sync, reads, its first Send) in 0-RTT data, before the
// handshake completed. An attacker who recorded those packets can replay
// them to the server, which cannot tell a replay from the original until
// the handshake completes (it never does for a replay: the attacker lacks
// the keys). So until then a session acts only on requests whose repetition
// changes nothing (wire.ReplaySafe), and holds anything else, and every frame
// behind it, until the handshake completed (docs/transport.md, "0-RTT").

// earlyConn is a control stream whose first frames may be 0-RTT data
// (homeserver/transport.EarlyConn).
type earlyConn interface {
	HandshakeComplete() <-chan struct{}
}

// awaitHandshake holds f, when it is not replay-safe, until the stream's
// handshake completed; false means the session ended first (f is dropped
// with it: the client never learns of an answer and sends it again on its
// next connection).
func (ss *session) awaitHandshake(f *wire.ClientFrame) bool {
	if ss.early == nil || wire.ReplaySafe(f) {
		return true
	}
	select {
	case <-ss.early.HandshakeComplete():
		ss.early = nil
		return true
	default:
	}
	ss.s.ctr.earlyHeld.Add(1)
	select {
	case <-ss.early.HandshakeComplete():
		ss.early = nil
		return true
	case <-ss.ctx.Done():
		return false
	}
}

// noteEarly counts a request acted upon before the handshake completed.
func (ss *session) noteEarly() {
	if ss.early == nil {
		return
	}
	select {
	case <-ss.early.HandshakeComplete():
		ss.early = nil
	default:
		ss.s.ctr.earlyServed.Add(1)
	}
}
