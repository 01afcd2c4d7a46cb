package client

import (
	"context"
	"fmt"
	"sync/atomic"

	"hearth/client/e2ee"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

// keyPackageBatch is how many single-use KeyPackages a device publishes.
const keyPackageBatch = 20

// keyPackages publishes this device's KeyPackages, through which others
// add it to groups, and keeps enough of them published.
type keyPackages struct {
	e2ee bool // an MLS engine is configured
	st   *store.Store
	mls  e2ee.Engine
	self func() (e2ee.Self, error)
	call func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)

	counts atomic.Int64 // KeyPackage counts run by needIn (tests)
}

// publish makes a batch of KeyPackages and a last-resort one,
// stores their private parts, then publishes them. Without an MLS engine
// there is nothing to publish, and the device cannot be added to groups.
func (k *keyPackages) publish(ctx context.Context) error {
	const op = "client.PublishKeyPackages"
	if !k.e2ee {
		return fmt.Errorf("%s: %w", op, ErrNoE2EE)
	}
	self, err := k.self()
	if err != nil {
		return err
	}
	var pkgs [][]byte
	var lastResort []byte
	err = k.st.Update(func(tx *store.Tx) error {
		for i := 0; i <= keyPackageBatch; i++ {
			kp, err := k.mls.NewKeyPackage(self)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if err := tx.PutKeyPackage(kp.Ref, kp.Private); err != nil {
				return err
			}
			if i == keyPackageBatch {
				lastResort = kp.Message
				if err := tx.PutMeta(metaLastResort+string(kp.Ref), []byte{1}); err != nil {
					return err
				}
			} else {
				pkgs = append(pkgs, kp.Message)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = k.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_PublishKeyPackages{PublishKeyPackages: &wire.PublishKeyPackages{
		KeyPackages: pkgs, LastResort: lastResort,
	}}})
	if err != nil {
		return err
	}
	return k.st.Update(func(tx *store.Tx) error { return tx.PutMeta(metaKeyPackages, []byte{1}) })
}

const (
	metaKeyPackages = "keypackages-published"
	metaLastResort  = "lastresort/" // + ref: a last-resort package, kept after use
	keyPackagesLow  = 5
)

// ensure publishes KeyPackages if an earlier run could not, or
// when Welcomes used up most of them.
func (k *keyPackages) ensure(ctx context.Context) error {
	var need bool
	// A Peek (here and for the other reads of metadata, group states and
	// keys on the send and receive paths): the writes put off by
	// Store.Later touch only the outbox, history and inbox, and a View
	// would commit them in a transaction of their own.
	k.st.Peek(func(tx *store.Tx) error { need = k.needIn(tx); return nil })
	return k.ensureIf(ctx, need)
}

// needIn reports, reading tx, whether KeyPackages must be published
// (ensure). An answer "enough" is noted in the store (MarkKeysChecked)
// and holds until a key is written: it turns into "publish" only when a
// KeyPackage is used or withdrawn (DeleteKeyPackage). The marks it
// reads besides change only in a transaction that writes keys too
// (metaLastResort, written with its KeyPackage in publish, never deleted)
// or towards "enough" (metaKeyPackages, never deleted). So a Flush of a
// device that has enough, the usual case, reads nothing here.
func (k *keyPackages) needIn(tx *store.Tx) bool {
	if tx.KeysChecked() {
		return false
	}
	k.counts.Add(1)
	done := tx.Meta(metaKeyPackages) != nil
	left := tx.CountKeyPackages(keyPackagesLow, func(ref []byte) bool { return tx.Meta(metaLastResort+string(ref)) == nil })
	if done && left >= keyPackagesLow {
		tx.MarkKeysChecked()
		return false
	}
	return true
}

// ensureIf is ensure after needIn said need.
func (k *keyPackages) ensureIf(ctx context.Context, need bool) error {
	if !need {
		return nil
	}
	return k.publish(ctx)
}
