package client

import (
	"context"
	"sync"

	"hearth/client/convstate"
	"hearth/client/store"
)

// maxPrewarm bounds the conversations whose rosters one Flush checks ahead
// of sealing (prewarm).
const maxPrewarm = 8

// warming tracks the roster checks prewarm started, by conversation.
type warming struct {
	mu   sync.Mutex
	busy map[string]chan struct{}
}

// Prewarming (Client.flush): warmUp starts, in the background, the
// roster check (the users' signed device lists against the group) of the
// conversations whose queued messages go next, before the session has
// caught up: the check's device-list fetch is then written behind the
// connection's Hello and Sync, in their round trip
// (session.Session.Call), instead of a round trip after them. sealIn
// waits for a check in progress on its conversation rather than starting
// a second one. Best effort: a check that fails here (not connected yet,
// the conversation needs healing) is done again by sealIn, with its
// errors. The function warmUp returns waits for the checks it started
// (each ends with ctx at the latest); Flush calls it before returning, so
// that none outlives the client.

// toWarmIn returns, reading tx, the conversations to check ahead: those
// of the next queued messages (past the items settling) whose roster is
// not fresh and that this device has not left.
func (sl *sealer) toWarmIn(tx *store.Tx, settling func(id string) bool) []string {
	heads, err := tx.OutboxHeadsSkipping(settling)
	if err != nil {
		return nil // best effort: sealIn checks again, with its errors
	}
	var convs []string
	seen := map[string]bool{}
	for _, it := range heads {
		conv := it.Conversation
		if conv == "" {
			var ok bool
			if conv, ok = convstate.For(tx, it.To); !ok {
				continue // a first message creates its conversation when sealed
			}
		}
		if it.Failed == "" && !seen[conv] && len(seen) < maxPrewarm {
			seen[conv] = true
			if tx.Meta(goneName(conv)) == nil && !sl.rosters.FreshIn(tx, conv) {
				convs = append(convs, conv)
			}
		}
	}
	return convs
}

// warmUp starts the roster checks of convs (toWarmIn) that are not
// running yet; the returned function waits for them.
func (sl *sealer) warmUp(ctx context.Context, convs []string) (wait func()) {
	var wg sync.WaitGroup
	for _, conv := range convs {
		sl.warm.mu.Lock()
		if sl.warm.busy == nil {
			sl.warm.busy = map[string]chan struct{}{}
		}
		if _, ok := sl.warm.busy[conv]; ok {
			sl.warm.mu.Unlock()
			continue
		}
		done := make(chan struct{})
		sl.warm.busy[conv] = done
		sl.warm.mu.Unlock()
		wg.Go(func() {
			defer func() {
				sl.warm.mu.Lock()
				delete(sl.warm.busy, conv)
				sl.warm.mu.Unlock()
				close(done)
			}()
			if err := sl.rosters.Reconcile(ctx, conv); err != nil {
				sl.log.Debug("roster check ahead of sealing failed; sealing checks again", "conversation", conv, "err", err)
				return
			}
			sl.rosters.MarkSynced(conv)
		})
	}
	return wg.Wait
}

// waitWarm waits for a roster check prewarm started on conv, if any.
func (sl *sealer) waitWarm(ctx context.Context, conv string) error {
	sl.warm.mu.Lock()
	done := sl.warm.busy[conv]
	sl.warm.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
