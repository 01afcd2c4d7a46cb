// Package transport connects a Hearth client to its homeserver: Dial
// returns the control stream as an io.ReadWriteCloser carrying the
// length-delimited frames of hearth/homeserver/wire.
//
// Dial tries native QUIC first (ALPN NextProtoHearth: the frames on the
// connection's first bidirectional stream, in 0-RTT data when a session
// ticket is at hand), WebTransport over HTTP/3 where the server does not
// speak it (https://HOST:PORT/hearth/v1, the session's first bidirectional
// stream), and races a WebSocket over TLS (wss://HOST:PORT/hearth/v1/ws)
// when QUIC fails or does not answer within DialOptions.RaceDelay, as on
// networks that block UDP.
//
// The server learns of the control stream only when data arrives on it, so
// the client protocol always speaks first: the first frame (Login or Hello)
// is written right after Dial returns.
//
// In the browser (GOOS=js, the web client) DialBrowser does the same with
// the browser's own WebTransport and WebSocket through syscall/js: the
// WebTransport session at /hearth/v1 with the leaf's hash from
// PathCertificates (serverCertificateHashes, for a server on its
// development CA), the WebSocket raced beside it (dial_js.go,
// webtransport_js.go).
//
// Many sessions in one process (load tests, bots) can share UDP sockets
// through a SocketPool: each socket carries up to N QUIC connections.
//
// This package imports no server package besides homeserver/wire.
package transport
