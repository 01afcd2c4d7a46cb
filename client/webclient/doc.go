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
//
// Messages to the page (field "ev"):
//
//	{ev: "account", user, device, active}   the profile's account at start
//	{ev: "link_code", user, device, code, fingerprint, qr_svg}
//	                                        pending: approve with this code
//	                                        (qr_svg: its QR code, hearth-link:USER:CODE)
//	{ev: "active", user, device}            approved (or the first device)
//	{ev: "recovery_key", key}               the first device's recovery key
//	{ev: "message", id, conversation, from, text, sent_ms, outgoing}
//	{ev: "sent", id, to}                    the server accepted a queued text
//	{ev: "logged_out", user, device}        the profile is deleted (reload)
//	{ev: "devices", devices: [{id, name, status, listed, this, created_ms, last_seen_ms}]}
//	{ev: "revoked", device}                 a revoke went through
//	{ev: "typing", peer, user, typing}      someone types in a conversation
//	{ev: "error", op, message}              an operation failed
//
// Build: go generate ./homeserver/webui (docs/decisions/0011-web-client-build.md).
package main
