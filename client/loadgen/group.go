package loadgen

import (
	"context"
	"errors"
	"time"
)

// GroupParams configure the group workload.
type GroupParams struct {
	Size     int     // members, one device each
	Senders  int     // members that send
	Rate     float64 // messages per second over all senders
	Duration time.Duration
	MsgSize  int
}

// ErrNoGroupAPI says why the group workload cannot run yet.
var ErrNoGroupAPI = errors.New("loadgen: the group workload cannot run yet: the client library has no " +
	"call to create a conversation with more than one other member (client.Queue addresses a user or an " +
	"existing conversation only); it runs once that API exists")

// Group would measure one message to a Size-member group reaching every
// online device. It refuses to run (ErrNoGroupAPI) instead of faking it.
func Group(ctx context.Context, f *Fleet, p GroupParams) (*Report, error) {
	return nil, ErrNoGroupAPI
}
