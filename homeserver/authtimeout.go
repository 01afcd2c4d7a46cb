package homeserver

import (
	"time"

	"hearth/homeserver/wire"
)

// authRecheck is how soon the auth watch looks again when the deadline
// passed while a Hello, Login or Refresh was being verified.
const authRecheck = 100 * time.Millisecond

// watchAuth ends the session if it has not authenticated within wait of
// opening, so that idle unauthenticated streams do not hold server
// resources. An authentication being verified at the deadline may finish.
func (ss *session) watchAuth(wait time.Duration) {
	next := wait
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-ss.s.after(next):
		}
		if ss.status.Load() != 0 {
			return
		}
		if ss.authBusy.Load() {
			next = authRecheck
			continue
		}
		ss.s.log.Info("closing a stream that did not authenticate in time", "remote", ss.remote, "after", wait)
		ss.end(wire.Code_CODE_UNAUTHENTICATED, "no Hello or Login within "+wait.String())
		return
	}
}
