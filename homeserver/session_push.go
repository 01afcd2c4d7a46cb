package homeserver

import (
	"context"
	"sync"
	"sync/atomic"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// FuncRouter is implemented by Routers that can call a function instead of
// waking a channel (LocalRouter does). A pusher then holds no goroutine
// while its device has nothing new: one runs only while there is
// something to push.
type FuncRouter interface {
	// SubscribeFunc calls fn after each Notify for the device (fn must not
	// block) until cancel is called.
	SubscribeFunc(deviceID string, fn func()) (cancel func())
}

const pushBatch = 64 // mailbox entries read per query

// pusher pushes one device's mailbox to one session in seq order, with at
// most DeliveryWindow entries unacknowledged. It runs on a goroutine only
// while there is work: a Notify (new entries) or an Ack (window moved)
// kicks it, and it stops when it has caught up or the window is full.
type pusher struct {
	ss     *session
	ctx    context.Context
	cancel context.CancelFunc
	unsub  func()
	pushed atomic.Uint64 // highest seq written to the stream
	acked  atomic.Uint64 // highest seq acknowledged (durably)
	reads  atomic.Uint64 // database reads (tests and benchmarks count them)
	cursor uint64        // used only by the running pass

	mu      sync.Mutex
	hints   handoffs // just-committed entries handed by the router (session_handoff.go)
	stale   bool     // entries may be stored that are not in hints: read
	started bool     // kicks before start only mark work (SyncOK goes first)
	running bool
	again   bool // work arrived: run (another) pass
	stopped bool
	wg      sync.WaitGroup
}

// newPusher subscribes to the device's notifications (before the first
// read, so that no wake-up is missed) without pushing yet: start does.
func (ss *session) newPusher(start uint64) *pusher {
	ctx, cancel := context.WithCancel(ss.ctx)
	p := &pusher{ss: ss, ctx: ctx, cancel: cancel, cursor: start, stale: true}
	p.pushed.Store(start)
	p.acked.Store(start)
	if er, ok := ss.s.router.(EntrySubscriber); ok {
		p.unsub = er.SubscribeEntries(ss.deviceID, p.offer)
		return p
	}
	if fr, ok := ss.s.router.(FuncRouter); ok {
		p.unsub = fr.SubscribeFunc(ss.deviceID, p.wake)
		return p
	}
	wake, unsub := ss.s.router.Subscribe(ss.deviceID)
	p.unsub = unsub
	p.wg.Add(1)
	go func() { // a Router without callbacks: one goroutine turns wake-ups into kicks
		defer p.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				p.wake()
			}
		}
	}()
	return p
}

// start begins pushing (after the SyncOK answer was written).
func (p *pusher) start() {
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	p.kick()
}

// kick asks for a pass; it never blocks.
func (p *pusher) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.again = true
	if p.running || !p.started {
		return
	}
	p.running = true
	p.wg.Add(1)
	go p.run()
}

func (p *pusher) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if !p.again || p.stopped {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.again = false
		p.mu.Unlock()
		if !p.pushAvailable() {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
			return
		}
	}
}

// stop ends the pusher and waits for a running pass.
func (p *pusher) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.unsub()
	p.wg.Wait()
}

// pushAvailable writes what the window allows of what is stored: the
// handed entries that continue the cursor, else what a database read
// finds. It returns false when the session is over (stream or database
// failure).
func (p *pusher) pushAvailable() bool {
	ss := p.ss
	window := uint64(ss.s.cfg.DeliveryWindow)
	for {
		p.cursor = max(p.cursor, p.acked.Load())
		inflight := p.cursor - min(p.cursor, p.acked.Load())
		if inflight >= window {
			return true // an Ack kicks the next pass
		}
		n := int(min(window-inflight, pushBatch))
		hs, read, gapOnly := p.next(n)
		for _, h := range hs {
			d := delivery(h.e)
			d.Seq = h.seq
			if !p.write(d) {
				return false
			}
		}
		if !read {
			if len(hs) == 0 {
				return true // caught up: a Notify kicks the next pass
			}
			continue
		}
		var es []*storage.Entry
		err := ss.s.db.Read(p.ctx, func(tx *storage.Tx) (err error) { es, err = tx.Entries(ss.deviceID, p.cursor, n); return err })
		p.reads.Add(1)
		if err != nil {
			if p.ctx.Err() == nil {
				ss.s.log.Error("delivery read failed", "device", ss.deviceID, "err", err)
				ss.cancel()
			}
			return false
		}
		for _, e := range es {
			if !p.write(delivery(e)) {
				return false
			}
		}
		if len(es) == 0 && gapOnly {
			ss.s.log.Error("delivery: handed entries not in the mailbox", "device", ss.deviceID, "after", p.cursor)
			p.dropHints() // never read in a loop for them
		}
		if len(es) == n {
			p.moreStored()
		}
	}
}

// write pushes one delivery and moves the cursor past it.
func (p *pusher) write(d *wire.Delivery) bool {
	if err := p.ss.fw.WriteMessage(&wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: d}}); err != nil {
		p.ss.cancel()
		return false
	}
	p.cursor = d.Seq
	p.pushed.Store(p.cursor)
	return true
}

// stopPush ends the running Sync, if any, and waits for it.
func (ss *session) stopPush() {
	ss.pushMu.Lock()
	p := ss.push
	ss.push = nil
	ss.pushMu.Unlock()
	if p != nil {
		p.stop()
	}
}

func (ss *session) currentPush() *pusher {
	ss.pushMu.Lock()
	defer ss.pushMu.Unlock()
	return ss.push
}
