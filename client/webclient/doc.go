//go:build js && wasm

// Command webclient is the Hearth web client's core: the Go client library
// (hearth/client) compiled to WebAssembly and run in a Web Worker of the page
// every homeserver serves at / (homeserver/webui). The page and the worker
// talk by postMessage; the worker owns the profile (IndexedDB, through
// client/store) and the session (the browser's WebTransport, or its
// WebSocket where WebTransport fails, through
// client/transport.DialBrowser), so the page never blocks on either.
//
// Messages from the page (field "op"):
//
//	{op: "login", user, password, device_name}  log in as a new device
//	{op: "send", to, text}                      queue and send a text
//	{op: "logout"}                              end the session, delete the profile
//	{op: "typing", to, typing}                  tell to's conversation this user types
//	{op: "devices"}                             list the user's devices
//	{op: "revoke", device}                      revoke another device of the user
//	{op: "read", conversation, id}              the page shows conversation's messages up
//	                                            to id: mark them read, send the receipt
//	{op: "presence", users}                     ask the presence of users
//	{op: "send_file", to, name, type, data, ref} send a file (data: a Uint8Array;
//	                                            its message event carries ref back)
//	{op: "fetch", id}                           download message id's file
//	{op: "group_create", name, members}         create a group
//	{op: "group_add", conversation, users}      add users to a group (admins)
//	{op: "group_remove", conversation, users}   remove users from a group (admins)
//	{op: "group_info", conversation}            a group's name, members and admins
//
// Messages to the page (field "ev"):
//
//	{ev: "account", user, device, active}   the profile's account at start
//	{ev: "link_code", user, device, code, fingerprint, qr_svg}
//	                                        pending: approve with this code
//	                                        (qr_svg: its QR code, hearth-link:USER:CODE)
//	{ev: "active", user, device}            approved (or the first device)
//	{ev: "recovery_key", key}               the first device's recovery key
//	{ev: "message", id, conversation, peer, title, from, text, sent_ms, outgoing,
//	 status, recipients, delivered_to, read_by, media: {name, type, size, sha256},
//	 event, user, ref, history}             a message of history or the inbox, or
//	                                        a group event (event: member_added, …);
//	                                        peer: the list entry (the other user of
//	                                        a 1:1, else the conversation id), title:
//	                                        a group's name; status (this user's
//	                                        messages): sent, delivered or read;
//	                                        history: from the store, at start
//	{ev: "status", messages: [{id, status, recipients, delivered_to, read_by}]}
//	                                        receipts moved these messages' state
//	{ev: "receipt", conversation, user, kind, ids}
//	                                        a receipt event (before its "status")
//	{ev: "unread", peer, count}             at start: messages past this user's
//	                                        read mark (read on any of its devices)
//	{ev: "conversation", peer, title}       a group this device is in (at start,
//	                                        after the stored messages)
//	{ev: "presence", user, state, last_active_ms}
//	{ev: "file", id, name, type, data}      a fetched file (data: a Uint8Array)
//	{ev: "group", id, name, members, admins, admin}
//	                                        a group created, changed or asked about
//	{ev: "sent", id, to}                    the server accepted a queued text
//	{ev: "logged_out", user, device}        the profile is deleted (reload)
//	{ev: "devices", devices: [{id, name, status, listed, this, created_ms, last_seen_ms}]}
//	{ev: "revoked", device}                 a revoke went through
//	{ev: "typing", peer, user, typing}      someone types in a conversation
//	{ev: "error", op, message}              an operation failed
//
// Build: go generate ./homeserver/webui (docs/decisions/0011-web-client-build.md).
package main
