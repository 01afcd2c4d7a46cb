// Package homeserver is the Hearth server for one domain: accounts,
// devices, authentication, the key directory, conversation hubs, mailboxes
// and delivery. Transport adapters (WebTransport, WebSocket, REST, the
// admin socket) turn its methods into network services; the logic here
// never listens on its own.
package homeserver
