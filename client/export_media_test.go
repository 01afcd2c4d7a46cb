package client

import (
	"testing"

	"hearth/homeserver"
)

// NewTestServerMedia is NewTestServer with the given media limits.
func NewTestServerMedia(t testing.TB, domain string, m homeserver.MediaConfig) *TestServer {
	cfg := homeserverConfig()
	cfg.Media = m
	return newTestServer(t, domain, cfg)
}
