// Package session keeps one device's authenticated control stream to its
// homeserver up: reconnect with backoff and jitter, Hello (Refresh when
// the access token expired), Sync after the last processed mailbox
// sequence, deliveries handed to a DeliveryHandler in order and
// acknowledged cumulatively, typing and presence pushes (datagrams where
// the transport has them).
//
//	Session   the kept-up stream: Call, CallNow, Live, Sync, CatchUp
//	Conn      request/response multiplexing by frame id over one stream
//	          (Call; Start pipelines requests in order)
//	acker     the owed cumulative Ack (ack.go): it rides in front of the
//	          next frame written, or goes after Config.AckDelay (20 ms), at
//	          once when 64 entries are owed, on Close, and on the next
//	          connection when its own broke
//
// It knows nothing of MLS or the profile store: the client gives it its
// tokens (Tokens) and its delivery processing (DeliveryHandler).
package session
