package delivery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"hearth/homeserver/wire"
	"hearth/homeserver/workers"
	"hearth/storage"
)

const pushBatch = 256 // mailbox entries read per query at most (a whole default window)

// pusher pushes one device's mailbox to one session in seq order, with at
// most DeliveryWindow entries unacknowledged. It runs on a goroutine only
// while there is work: a Notify (new entries) or an Ack (window moved)
// kicks it, and it stops when it has caught up or the window is full.
type Pusher struct {
	e      *Engine
	device string
	writeN func([]*wire.ServerFrame) error // writes a batch of frames in order
	fail   func()
	ctx    context.Context // the session's: reads end with it (Stop does not wait long for one)
	unsub  func()
	pushed atomic.Uint64 // highest seq written to the stream
	acked  atomic.Uint64 // highest seq acknowledged (durably)
	reads  atomic.Uint64 // database reads (tests and benchmarks count them)
	passes atomic.Uint64 // push passes run (tests count them)
	cursor uint64        // used only by the running pass

	mu      sync.Mutex
	hints   handoffs // just-committed entries handed by the router (handoff.go)
	stale   bool     // entries may be stored that are not in hints: read
	started bool     // kicks before start only mark work (SyncOK goes first)
	running bool
	// windowFull: the last pass stopped at the window; an Ack must
	// start the next one.
	windowFull bool
	again      bool // work arrived: run (another) pass
	stopped    bool
	wg         sync.WaitGroup
}

// NewPusher subscribes to the device's notifications (before the first
// read, so that no wake-up is missed) without pushing yet: Start does. It
// pushes entries after start with write, which writes a batch of
// Delivery frames in order (the batch is the entries ready at one pass:
// write them together); fail ends the session when the stream or the
// database fails. ctx is the session's.
func (e *Engine) NewPusher(ctx context.Context, device string, start uint64, write func([]*wire.ServerFrame) error, fail func()) *Pusher {
	p := &Pusher{e: e, device: device, writeN: write, fail: fail, ctx: ctx, cursor: start, stale: true}
	p.pushed.Store(start)
	p.acked.Store(start)
	if er, ok := e.router.(EntrySubscriber); ok {
		p.unsub = er.SubscribeEntries(device, p.offer)
		return p
	}
	if fr, ok := e.router.(FuncRouter); ok {
		p.unsub = fr.SubscribeFunc(device, p.wake)
		return p
	}
	wake, unsub := e.router.Subscribe(device)
	ctx, cancel := context.WithCancel(ctx)
	p.unsub = func() { cancel(); unsub() }
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

// Start begins pushing (after the SyncOK answer was written).
func (p *Pusher) Start() {
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	p.kick()
}

// Ack moves the window to up (a durable cumulative acknowledgement) and
// asks for a pass if it moved. An Ack read moves the window at once
// (AckReceived), so its durable completion usually finds it moved and
// costs no pass.
func (p *Pusher) Ack(up uint64) {
	for {
		cur := p.acked.Load()
		if up <= cur {
			return // the window did not move: nothing new may be pushed
		}
		if p.acked.CompareAndSwap(cur, up) {
			break
		}
	}
	p.kickIfWaiting() // the window moved
}

// AckReceived moves the window for an Ack just read, before it is
// durable: up to up, but never past what this pusher wrote (an ack beyond
// it moves the window only once durable, through Ack). The window is flow
// control; what a reconnect resumes from is the durable ack, so a
// receiver's next entries need not wait for its previous ack's fsync.
func (p *Pusher) AckReceived(up uint64) {
	p.Ack(min(up, p.pushed.Load()))
}

// Reads is how many times the pusher read the mailbox (tests and
// benchmarks count them).
func (p *Pusher) Reads() uint64 { return p.reads.Load() }

// Passes is how many push passes ran (tests).
func (p *Pusher) Passes() uint64 { return p.passes.Load() }

// Running reports whether a pass is running or asked for (tests).
func (p *Pusher) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// kick asks for a pass; it never blocks.
func (p *Pusher) kick() {
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
	workers.Go(p.run)
}

// kickIfWaiting is kick for a moved window: it asks for a pass only if
// one may push something now. A pass that stopped at a full window, or
// entries handed or stored since, need one; a caught-up pusher (an Ack of
// what was pushed, the usual case) does not start a goroutine for
// nothing. A running pass is asked for another round in any case: it may
// be about to stop at the window that just moved.
func (p *Pusher) kickIfWaiting() {
	p.mu.Lock()
	idle := !p.running && !p.windowFull && !p.stale && len(p.hints.list) == 0
	p.mu.Unlock()
	if !idle {
		p.kick()
	}
}

func (p *Pusher) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if !p.again || p.stopped {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.again = false
		p.windowFull = false
		p.mu.Unlock()
		p.passes.Add(1)
		if !p.pushAvailable() {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
			return
		}
	}
}

// Stop ends the pusher and waits for a running pass.
func (p *Pusher) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.unsub()
	p.wg.Wait()
}

func (p *Pusher) isStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// pushAvailable writes what the window allows of what is stored: the
// handed entries that continue the cursor, else what a database read
// finds. It returns false when the session is over (stream or database
// failure).
func (p *Pusher) pushAvailable() bool {
	window := uint64(p.e.window)
	for {
		p.cursor = max(p.cursor, p.acked.Load())
		inflight := p.cursor - min(p.cursor, p.acked.Load())
		if inflight >= window {
			p.mu.Lock()
			p.windowFull = true
			p.mu.Unlock()
			return true // an Ack kicks the next pass
		}
		n := int(min(window-inflight, pushBatch))
		hs, read, gapOnly := p.next(n)
		if len(hs) > 0 {
			fs := make([]*wire.ServerFrame, len(hs))
			for i, h := range hs {
				d := Delivery(h.e)
				d.Seq = h.seq
				fs[i] = deliveryFrame(d)
			}
			if !p.write(fs) {
				return false
			}
			if p.e.pushed != nil {
				now := p.e.now()
				for _, h := range hs {
					p.e.pushed(true, now.Sub(h.at))
				}
			}
		}
		if !read {
			if len(hs) == 0 {
				return true // caught up: a Notify kicks the next pass
			}
			continue
		}
		var es []*storage.Entry
		err := p.e.db.Read(p.ctx, func(tx *storage.Tx) (err error) { es, err = tx.Entries(p.device, p.cursor, n); return err })
		p.reads.Add(1)
		if p.isStopped() {
			return false // replaced by a new Sync meanwhile: it pushes from its own start
		}
		if err != nil {
			if p.ctx.Err() == nil {
				p.e.log.Error("delivery read failed", "device", p.device, "err", err)
				p.fail()
			}
			return false
		}
		if len(es) > 0 {
			fs := make([]*wire.ServerFrame, len(es))
			for i, e := range es {
				fs[i] = deliveryFrame(Delivery(e))
			}
			if !p.write(fs) {
				return false
			}
			if p.e.pushed != nil {
				now := p.e.now()
				for _, e := range es {
					p.e.pushed(false, now.Sub(time.UnixMilli(e.CreatedMs)))
				}
			}
		}
		if len(es) == 0 && gapOnly {
			p.e.log.Error("delivery: handed entries not in the mailbox", "device", p.device, "after", p.cursor)
			p.dropHints() // never read in a loop for them
		}
		if len(es) == n {
			p.moreStored()
		}
	}
}

// write pushes a batch of deliveries in seq order, in one call of the
// session's writer (one stream write when nothing else is being
// written), and moves the cursor past them.
//
// pushed moves before the write: the session's writer may carry other
// frames after these in the same call (a reply the client answers with an
// Ack of these), and an Ack read before pushed moved would not move the
// window (AckReceived).
func (p *Pusher) write(fs []*wire.ServerFrame) bool {
	last := fs[len(fs)-1].GetDelivery().Seq
	p.pushed.Store(last)
	if err := p.writeN(fs); err != nil {
		p.fail()
		return false
	}
	p.cursor = last
	return true
}

func deliveryFrame(d *wire.Delivery) *wire.ServerFrame {
	return &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: d}}
}
