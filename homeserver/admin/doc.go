// Package admin is the homeserver's administration interface: the Ops the
// server offers, and the local transport that serves them as JSON over a
// Unix socket owned by the server's user (never exposed on the network).
// `hearth admin …` is its client.
package admin
