// Package transport puts a homeserver on the network. It never opens
// sockets itself: the caller hands it a UDP net.PacketConn and a TCP
// net.Listener (normally on the same port number) and it serves
//
//   - native QUIC for native clients (ALPN NextProtoHearth, "hearth/1",
//     native.go): the connection's first bidirectional stream is the
//     control stream, with no HTTP/3 layer; returning clients send their
//     first frames in 0-RTT data, and the stream implements EarlyConn so
//     that the StreamServer acts only on replay-safe requests until the
//     handshake completed;
//   - WebTransport over HTTP/3 (QUIC) at https://HOST:PORT/hearth/v1: each
//     session's first bidirectional stream is the control stream, handed to
//     StreamServer.ServeStream as an io.ReadWriteCloser;
//   - the WebSocket fallback at wss://HOST:PORT/hearth/v1/ws carrying the
//     same length-delimited frames in binary messages, for networks that
//     block UDP;
//   - REST over HTTPS: GET /hearth/v1/messages (history pages, bearer
//     token), GET /hearth/v1/media/ID, GET /hearth/v1/conversations,
//     POST /hearth/v1/token/refresh, GET /healthz, and Deps.Admin under
//     /hearth/v1/admin/ (docs/openapi.json lists every route).
//
// Every HTTPS response advertises HTTP/3 with Alt-Svc. Wire error codes are
// turned into HTTP statuses in one place (HTTPStatus, WriteError), which
// also logs internal failures; the admin socket uses the same two.
//
// Session flow:
//
//	client                         transport                      StreamServer
//	QUIC+TLS, CONNECT /hearth/v1 -> accept session
//	open bidi stream, write frame-> AcceptStream  ->  ServeStream(ctx, rwc, remote)
//	frames <->                      io.ReadWriteCloser            frames <->
//	                                rwc.Close: FIN, then wait for the client
//	read to FIN, close session   ->     to close the session (3 s at most)
//
// A QUIC stream becomes visible to the server only when the client sends
// on it: clients always write the first frame (Login or Hello) at once.
// Closing a session resets its streams, so only the client closes it, after
// reading the server's FIN; otherwise the last frames could be lost.
//
// QUIC runs on a quic.Transport of our own (ServeQUIC) so that it can carry
// Deps.ResetKey: stateless resets that a restarted server can still send
// for its predecessor's connections (docs/transport.md).
//
// Each ServeStream runs under a context of its own, derived from its
// connection's (or session's) and cancelled when the stream ends; the
// server keeps its cancel with the stream. Shutdown(ctx) stops accepting,
// cancels every one of those contexts (so the homeserver can tell sessions
// it is going away), waits for them until ctx ends, then closes what is
// left.
package transport
