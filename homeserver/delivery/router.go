package delivery

import (
	"slices"
	"sync"

	"hearth/storage"
)

// Router carries "deliver to device X: new entries up to seq N" from the
// transaction that queued them to the sessions serving X. LocalRouter does
// it in process; a multi-node mode replaces it (DESIGN.md "Scale-out seam").
type Router interface {
	// Notify says the device's mailbox head is now at least head.
	Notify(deviceID string, head uint64)
	// Subscribe returns a channel that receives a token after Notify for the
	// device (tokens coalesce), and a function that ends the subscription.
	Subscribe(deviceID string) (wake <-chan struct{}, cancel func())
}

// EntryNotifier is implemented by Routers that can carry a mailbox entry
// itself (LocalRouter does). Engine.HandCommitted calls it only after the
// transaction that wrote the entry has committed.
type EntryNotifier interface {
	// NotifyEntry is Notify(deviceID, seq) for the one new entry at seq,
	// which is durable, handing the entry along. e is shared by every
	// device the message went to and must not be changed; its Seq field
	// is not the device's (seq is).
	NotifyEntry(deviceID string, seq uint64, e *storage.Entry)
}

// EntrySubscriber is implemented by Routers that hand entries to their
// subscribers (LocalRouter does). A pusher then pushes a just-committed
// entry without reading it back (handoff.go).
type EntrySubscriber interface {
	// SubscribeEntries calls fn(seq, e) after each NotifyEntry for the
	// device and fn(0, nil) after each Notify (something new, not handed),
	// until cancel is called. fn must not block.
	SubscribeEntries(deviceID string, fn func(seq uint64, e *storage.Entry)) (cancel func())
}

// FuncRouter is implemented by Routers that can call a function instead of
// waking a channel (LocalRouter does). A pusher then holds no goroutine
// while its device has nothing new: one runs only while there is
// something to push.
type FuncRouter interface {
	// SubscribeFunc calls fn after each Notify for the device (fn must not
	// block) until cancel is called.
	SubscribeFunc(deviceID string, fn func()) (cancel func())
}

// LocalRouter is the in-process Router.
type LocalRouter struct {
	mu    sync.Mutex
	subs  map[string]map[chan struct{}]struct{}
	fsubs map[string][]*localSub // nearly always one per device: a slice, not a map each
}

// localSub is one callback subscriber: kick (SubscribeFunc) or hand
// (SubscribeEntries).
type localSub struct {
	kick func()
	hand func(seq uint64, e *storage.Entry)
}

var (
	_ Router          = (*LocalRouter)(nil)
	_ FuncRouter      = (*LocalRouter)(nil)
	_ EntryNotifier   = (*LocalRouter)(nil)
	_ EntrySubscriber = (*LocalRouter)(nil)
)

// NewLocalRouter returns an empty in-process router.
func NewLocalRouter() *LocalRouter {
	return &LocalRouter{subs: map[string]map[chan struct{}]struct{}{}, fsubs: map[string][]*localSub{}}
}

// Notify wakes every subscriber of the device without blocking.
func (r *LocalRouter) Notify(deviceID string, _ uint64) { r.NotifyEntry(deviceID, 0, nil) }

// NotifyEntry wakes every subscriber of the device and hands e (if not
// nil) to those that take entries, without blocking.
func (r *LocalRouter) NotifyEntry(deviceID string, seq uint64, e *storage.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs[deviceID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for _, sub := range r.fsubs[deviceID] {
		if sub.hand == nil {
			sub.kick()
		} else if e == nil {
			sub.hand(0, nil)
		} else {
			sub.hand(seq, e)
		}
	}
}

// SubscribeFunc registers fn, called (under the router's lock, so it must
// be quick) after each Notify for the device.
func (r *LocalRouter) SubscribeFunc(deviceID string, fn func()) func() {
	return r.subscribe(deviceID, &localSub{kick: fn})
}

// SubscribeEntries registers fn, called (under the router's lock, so it
// must be quick) after each Notify or NotifyEntry for the device.
func (r *LocalRouter) SubscribeEntries(deviceID string, fn func(seq uint64, e *storage.Entry)) func() {
	return r.subscribe(deviceID, &localSub{hand: fn})
}

func (r *LocalRouter) subscribe(deviceID string, sub *localSub) func() {
	r.mu.Lock()
	r.fsubs[deviceID] = append(r.fsubs[deviceID], sub)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		old := r.fsubs[deviceID]
		i := slices.Index(old, sub)
		if i < 0 {
			return
		}
		if len(old) == 1 {
			delete(r.fsubs, deviceID)
			return
		}
		r.fsubs[deviceID] = slices.Delete(old, i, i+1) // in place: every reader holds mu
	}
}

// Subscribe registers a waker for the device.
func (r *LocalRouter) Subscribe(deviceID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	if r.subs[deviceID] == nil {
		r.subs[deviceID] = map[chan struct{}]struct{}{}
	}
	r.subs[deviceID][ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs[deviceID], ch)
		if len(r.subs[deviceID]) == 0 {
			delete(r.subs, deviceID)
		}
		r.mu.Unlock()
	}
}
