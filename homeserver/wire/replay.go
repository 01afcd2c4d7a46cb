package wire

// ReplaySafe reports whether f may travel in QUIC 0-RTT data, which an
// attacker can replay (RFC 9001 §9.2): a request whose repetition changes
// nothing. Hello opens a session that dies with the replay's unfinished
// handshake; Ping, Sync and Ack (cumulative) and the reads change nothing;
// Send is deduplicated by the server on (sender device, message id), so a
// replay is answered from the first result. The server acts on nothing
// else before the handshake completed (homeserver/early.go), and clients
// send nothing else in 0-RTT data (client/session). Both use this list:
// docs/transport.md, "0-RTT and replay safety".
func ReplaySafe(f *ClientFrame) bool {
	switch f.GetBody().(type) {
	case *ClientFrame_Hello, *ClientFrame_Ping, *ClientFrame_Sync, *ClientFrame_Ack, *ClientFrame_Send,
		*ClientFrame_FetchDeviceList, *ClientFrame_FetchDeviceLists, *ClientFrame_GetConversation,
		*ClientFrame_ListConversations, *ClientFrame_GetPresence, *ClientFrame_ListDevices,
		*ClientFrame_DownloadMedia:
		return true
	}
	return false
}
