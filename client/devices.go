package client

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
)

// deviceSync keeps this device's conversations in step with changes to
// the user's devices: it publishes KeyPackages while this device waits
// for approval (tops them up once it is active),
// adds a device it approved, and removes devices revoked here or listed
// as revoked by the server (taking them off the signed list first).
type deviceSync struct {
	e2ee    bool // an MLS engine is configured
	st      *store.Store
	link    *link
	acct    *account.Manager
	rosters *roster.Roster
	kp      *keyPackages
	log     *slog.Logger
	// added runs once a just-approved device is in conv: an admin's
	// device shares the admin key with its user's new device.
	added func(ctx context.Context, conv, device string) error

	// Background work close waits for (onRevokedListed).
	mu       sync.Mutex
	bg       sync.WaitGroup
	dropping bool
	closing  bool
}

// close stops new background work and waits for the running one.
func (ds *deviceSync) close() {
	ds.mu.Lock()
	ds.closing = true
	ds.mu.Unlock()
	ds.bg.Wait()
}

// whilePending runs while this device is pending, before it shows its
// link code: it publishes its KeyPackages. The server keeps them and hands
// them out only once the device is active and on its user's signed list,
// so the approving device claims them right after approving instead of
// polling until this device, told it is approved, published them
// (docs/transport.md, "Round trips").
func (ds *deviceSync) whilePending(ctx context.Context) error {
	if !ds.e2ee {
		return nil
	}
	return ds.kp.ensure(ctx)
}

// afterActivation runs once the account says this device is active: it
// restarts the session so that it takes mailbox deliveries, and publishes
// KeyPackages, or tops up those published while pending (whilePending).
func (ds *deviceSync) afterActivation(ctx context.Context) error {
	ds.link.reset()
	return ds.kp.ensure(ctx)
}

// afterApproval adds a device this device just approved to its
// conversations. Not fatal: any member adds the device on its next send.
func (ds *deviceSync) afterApproval(ctx context.Context, device string) {
	if !ds.e2ee {
		return
	}
	actx, cancel := context.WithTimeout(ctx, addApprovedWait)
	defer cancel()
	if err := ds.addToConversations(actx, device); err != nil {
		ds.log.Warn("new device not yet added to conversations", "device", device, "err", err)
	}
}

// afterRevoke removes a device this device revoked from its conversations
// now, rather than at the next send of whoever checks the lists first.
func (ds *deviceSync) afterRevoke(ctx context.Context, active bool) {
	ds.rosters.UnsyncAll()
	if ds.e2ee && active {
		rctx, cancel := context.WithTimeout(ctx, addApprovedWait)
		defer cancel()
		ds.reconcileAll(rctx)
	}
}

// addApprovedWait bounds how long Approve waits for the new device's
// KeyPackages to add it to this device's conversations.
const addApprovedWait = 20 * time.Second

// addToConversations adds a just-approved device of this user to every
// conversation this device is in, as soon as the device has published
// KeyPackages, so that it receives what follows from the start.
func (ds *deviceSync) addToConversations(ctx context.Context, device string) error {
	if err := ds.kp.ensure(ctx); err != nil {
		return err
	}
	s, err := ds.link.session(ctx)
	if err != nil {
		return err
	}
	if err := s.CaughtUp(ctx); err != nil {
		return err
	}
	var convs []string
	ds.st.View(func(tx *store.Tx) error { convs = tx.Conversations(); return nil })
	for _, conv := range convs {
		for {
			err := ds.rosters.Reconcile(ctx, conv)
			if errors.Is(err, errParked) {
				// Parked (parked.go): the others go on; the device is
				// added by the next send's roster check once it is applied.
				ds.log.Info("new device not yet added to a parked conversation", "conversation", conv, "device", device)
				break
			}
			if err != nil && !errors.Is(err, convstate.ErrRedo) && !session.Retryable(err) {
				return err
			}
			in, merr := ds.rosters.IsMember(conv, device)
			if merr != nil {
				break
			}
			if in {
				if err := ds.added(ctx, conv, device); err != nil {
					ds.log.Warn("admin key not yet shared with a new device", "conversation", conv, "device", device, "err", err)
				}
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// reconcileAll brings every conversation's roster in line with the device
// lists, logging (not returning) failures: any member does it on its next
// send anyway.
func (ds *deviceSync) reconcileAll(ctx context.Context) {
	if s, err := ds.link.session(ctx); err != nil || s.Resync(ctx) != nil {
		ds.log.Warn("not caught up; conversation rosters left to the next send")
		return
	}
	var convs []string
	ds.st.View(func(tx *store.Tx) error { convs = tx.Conversations(); return nil })
	for _, conv := range convs {
		var err error
		for try := 0; try < 3; try++ {
			if err = ds.rosters.Reconcile(ctx, conv); !errors.Is(err, convstate.ErrRedo) {
				break
			}
		}
		if err != nil {
			ds.log.Warn("conversation roster not updated", "conversation", conv, "err", err)
			continue
		}
		ds.rosters.MarkSynced(conv)
	}
}

// Devices an admin revoked stay on the user's signed list until one of the
// user's devices re-signs it (the server cannot: it does not hold the
// identity key). The server names them at every connection and in a push;
// this device then publishes the list without them and removes them from
// its conversations, and other users' clients drop them from theirs when
// they see the new list.

// dropRevokedWait bounds one background run of dropRevoked.
const dropRevokedWait = 30 * time.Second

// onRevokedListed starts dropRevoked in the background, once at a time;
// Close waits for it.
func (ds *deviceSync) onRevokedListed(ids []string) {
	ds.mu.Lock()
	if ds.dropping || ds.closing {
		ds.mu.Unlock()
		return
	}
	ds.dropping = true
	ds.bg.Add(1)
	ds.mu.Unlock()
	go func() {
		defer ds.bg.Done()
		defer func() { ds.mu.Lock(); ds.dropping = false; ds.mu.Unlock() }()
		ctx, cancel := context.WithTimeout(context.Background(), dropRevokedWait)
		defer cancel()
		if err := ds.dropRevoked(ctx, ids); err != nil {
			ds.log.Warn("revoked devices left on the signed list", "devices", ids, "err", err)
		}
	}()
}

// dropRevoked publishes this user's device list without the named
// devices (client/account) and removes them from this device's
// conversations. A device without the identity key (not approved yet)
// leaves it to the others.
func (ds *deviceSync) dropRevoked(ctx context.Context, ids []string) error {
	skipped, err := ds.acct.DropRevoked(ctx, ids)
	if err != nil || skipped {
		return err
	}
	ds.rosters.UnsyncAll()
	if ds.e2ee {
		ds.reconcileAll(ctx)
	}
	return nil
}
