//go:build js

package client

import "time"

// ticketCache: in the browser TLS is the browser's, so the profile keeps
// no session tickets (tickets.go is the native cache).
type ticketCache struct{}

func (*ticketCache) flush(time.Duration) {}
