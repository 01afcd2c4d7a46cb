package roster

import (
	"context"
	"fmt"
	"testing"

	"hearth/client/session"
	"hearth/homeserver/wire"
)

// TestOutcomeUnknown: a commit whose call ran out of time or was cancelled,
// or whose connection dropped, may have been accepted: its pending commit
// is kept; only an answer from the hub (a refusal, a stale epoch) drops it.
func TestOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"accepted", nil, false},
		{"deadline while waiting", fmt.Errorf("client.Commit: %w", context.DeadlineExceeded), true},
		{"cancelled while waiting", fmt.Errorf("client.Commit: %w", context.Canceled), true},
		{"connection dropped", fmt.Errorf("client.Commit: %w", session.ErrDisconnected), true},
		{"server busy", wire.Errorf("homeserver.Send", wire.Code_CODE_UNAVAILABLE, "try again"), true},
		{"stale epoch", wire.Errorf("homeserver.Send", wire.Code_CODE_STALE_EPOCH, "commit for epoch 1; conversation is at epoch 2"), false},
		{"refused", wire.Errorf("homeserver.Send", wire.Code_CODE_BAD_REQUEST, "bad commit"), false},
	} {
		if got := outcomeUnknown(tc.err); got != tc.want {
			t.Errorf("%s: outcomeUnknown(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
