package directory

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// unreachableFor is how long a domain whose server could not be reached
// is not asked for again: its users' device lists are the ones this
// device holds (the rosters keep their devices), and the next send after
// that refreshes them.
const unreachableFor = 30 * time.Second

// unreachable remembers the domains whose servers this device's server
// could not reach, in memory and in the store (so that the next `hearth
// chat send` knows too).
type unreachable struct {
	mu    sync.Mutex
	until map[string]time.Time
	home  string // this device's domain, once known
}

func unreachName(domain string) string { return "unreachable/" + domain }

// mark records that domain's server could not be reached just now.
func (d *Directory) markUnreachable(tx *store.Tx, domain string) {
	until := d.cfg.Now().Add(unreachableFor)
	d.unreach.mu.Lock()
	if d.unreach.until == nil {
		d.unreach.until = map[string]time.Time{}
	}
	d.unreach.until[domain] = until
	d.unreach.mu.Unlock()
	put := func(tx *store.Tx) error {
		return tx.PutMeta(unreachName(domain), binary.BigEndian.AppendUint64(nil, uint64(until.UnixMilli())))
	}
	var err error
	if tx != nil {
		err = put(tx)
	} else {
		err = d.cfg.Store.Update(put)
	}
	_ = err // a memo: losing it costs one round trip
}

// askAnyway marks a context whose fetches ask the server even about a
// domain found unreachable a moment ago (AskAnyway).
type askAnyway struct{}

// AskAnyway returns ctx with fetches that ignore the memo of unreachable
// domains: for a retry that waits on exactly such a list (a delivery
// parked until it can be fetched), where asking costs one round trip to
// this device's server and a server that came back is seen at once. A
// failed fetch marks the domain again.
func AskAnyway(ctx context.Context) context.Context {
	return context.WithValue(ctx, askAnyway{}, true)
}

// isUnreachable reports whether user's server was found unreachable
// within unreachableFor, and if so the error to return instead of asking.
func (d *Directory) isUnreachable(ctx context.Context, tx *store.Tx, user identity.UserAddress) error {
	if ctx.Value(askAnyway{}) != nil {
		return nil
	}
	domain := user.Domain
	now := d.cfg.Now()
	d.unreach.mu.Lock()
	until, ok := d.unreach.until[domain]
	d.unreach.mu.Unlock()
	if !ok {
		get := func(tx *store.Tx) error {
			if raw := tx.Meta(unreachName(domain)); len(raw) == 8 {
				until, ok = time.UnixMilli(int64(binary.BigEndian.Uint64(raw))), true
			}
			return nil
		}
		if tx != nil {
			get(tx)
		} else {
			d.cfg.Store.View(get)
		}
	}
	if !ok || !now.Before(until) {
		return nil
	}
	return wire.Errorf("client.FetchDeviceList", wire.Code_CODE_UNAVAILABLE,
		"the server of %s could not be reached a moment ago (asking again after %s)", domain, until.Format(time.TimeOnly))
}

// noteUnreachable marks user's domain when code says its server could
// not be reached: this device's server answered UNAVAILABLE about a user
// of another domain.
func (d *Directory) noteUnreachable(tx *store.Tx, user identity.UserAddress, code wire.Code) {
	if code != wire.Code_CODE_UNAVAILABLE {
		return
	}
	if home := d.home(tx); home != "" && user.Domain != home {
		d.markUnreachable(tx, user.Domain)
	}
}

// home is Config.Home, asked outside store transactions only (it reads
// the store) and kept once known.
func (d *Directory) home(tx *store.Tx) string {
	d.unreach.mu.Lock()
	defer d.unreach.mu.Unlock()
	if d.unreach.home == "" && tx == nil && d.cfg.Home != nil {
		d.unreach.home = d.cfg.Home()
	}
	return d.unreach.home
}
