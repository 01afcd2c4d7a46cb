// Package wire is the Hearth client <-> homeserver protocol, version 1.
//
// The messages are defined in hearth.proto (generated code in hearth.pb.go,
// committed). A connection is one ordered byte stream: the WebTransport
// control stream at https://HOST:PORT/hearth/v1, or the WebSocket fallback
// at wss://HOST:PORT/hearth/v1/ws. Each frame is a protobuf message prefixed
// by its length as an unsigned varint; frames larger than the negotiated
// maximum are refused before they are read.
//
// Message flow on the control stream:
//
//	client                                server
//	Login{user,password} or Hello{token} ->
//	                                      <- LoginOK / HelloOK (or Error)
//	Sync{after_seq}                      ->
//	                                      <- SyncOK{head}
//	                                      <- Delivery{seq} ... (pushes, id 0, seq order)
//	Ack{up_to_seq}                       -> (cumulative, no response)
//	Send{conversation,message_id,...}    ->
//	                                      <- SendOK{conversation_seq} after durable commit
//
// Media (encrypted files; for now on the control stream, see hearth.proto):
//
//	UploadMedia{total_size,data}         -> start
//	                                      <- UploadMediaOK{upload_id,received}
//	UploadMedia{upload_id,offset,data}   -> ... offset = received
//	UploadMedia{upload_id}               -> after a reconnect: where to resume
//	UploadMedia{upload_id,offset,data,final} ->
//	                                      <- UploadMediaOK{media_id,sha256} once durable
//	DownloadMedia{media_id,offset,length} ->
//	                                      <- MediaData{data,total_size}
//
// An upload in parts (files of 1 MiB or more, over several connections of
// the device at once):
//
//	UploadMedia{total_size,parts}        -> start
//	                                      <- UploadMediaOK{upload_id,part_size,part_received}
//	UploadMedia{upload_id,offset,data}   -> ... on any connection, any part;
//	                                         offset = part start + part_received
//	UploadMedia{upload_id,offset=total_size,final} ->
//	                                      <- UploadMediaOK{media_id,sha256} once durable
//
// Lossy signals (pushes only to sessions online at that moment; a slow
// session's are dropped):
//
//	Typing{conversation_id,typing}       -> (members' sessions, on any server)
//	                                      <- TypingEvent{conversation_id,user,typing}
//	SetPresence{state}                   -> (peers' sessions on this server)
//	                                      <- PresenceEvent{user,state,last_active_ms}
//	                                      <- DevicesChanged{revoked_listed} (an admin
//	                                         revoked a device still on the user's
//	                                         signed list; also in HelloOK)
//
// Requests carry a client-chosen non-zero id that the response echoes;
// pushes have id 0. Error codes (Code) are stable and only appended to.
//
// This package also holds Error, the one error type of the homeserver and
// client: its Kind is the wire Code, so the transport edge maps nothing.
package wire
