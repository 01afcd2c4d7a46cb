package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"hearth/client/store"
)

// sender sends measured messages from one device to one address.
type sender struct {
	idx  int // sender number in the run (message tag)
	dev  *Device
	to   string
	run  string
	size int
	now  func() time.Time

	mu     sync.Mutex
	sched  []time.Time // sched[seq-1]: when message seq was due
	ids    []string    // ids[seq-1]: its message id
	acked  uint64      // every seq ≤ acked was acknowledged
	ackLat []time.Duration
	late   []time.Duration // open loop: how late each message was queued after its due time
	errs   int
	wake   chan struct{}

	w *wireOut // wire mode (wire.go): Sends of a captured ciphertext; nil: the client
}

func newSender(idx int, dev *Device, to, run string, size int, now func() time.Time) *sender {
	return &sender{idx: idx, dev: dev, to: to, run: run, size: size, now: now, wake: make(chan struct{}, 1)}
}

// queue puts message number len(sched)+1, due at t, in the outbox.
func (s *sender) queue(t time.Time) (string, bool) {
	s.mu.Lock()
	seq := uint64(len(s.sched)) + 1
	if s.w != nil {
		defer s.mu.Unlock()
		id := wireID(s.run, s.idx, seq, t)
		s.sched = append(s.sched, t)
		s.ids = append(s.ids, id)
		s.queueWireLocked(id)
		return id, true
	}
	s.mu.Unlock()
	id, err := s.dev.C.Queue(s.to, benchText(s.run, s.idx, seq, t, s.size))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		return "", false
	}
	s.sched = append(s.sched, t)
	s.ids = append(s.ids, id)
	return id, true
}

// flush sends everything queued so far and records the acknowledgements.
func (s *sender) flush(ctx context.Context) bool {
	if s.w != nil {
		return s.flushWire(ctx)
	}
	s.mu.Lock()
	n := uint64(len(s.ids))
	if n == s.acked {
		s.mu.Unlock()
		return true
	}
	until := s.ids[n-1]
	s.mu.Unlock()
	err := s.dev.C.Flush(ctx, until)
	at := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		return false
	}
	for seq := s.acked + 1; seq <= n; seq++ {
		s.ackLat = append(s.ackLat, at.Sub(s.sched[seq-1]))
	}
	s.acked = n
	return true
}

// flatOut sends one message at a time, each as soon as the previous one
// was acknowledged, until stop or count messages (count 0: no limit).
func (s *sender) flatOut(ctx context.Context, stop time.Time, count int) {
	for i := 0; (count == 0 || i < count) && ctx.Err() == nil && s.now().Before(stop); i++ {
		if _, ok := s.queue(s.now()); !ok {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		if !s.flush(ctx) {
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	for ctx.Err() == nil && !s.flush(ctx) { // what a failed flush left behind
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// burst queues count messages at once and flushes them with one Flush,
// retrying a failed flush until ctx ends.
func (s *sender) burst(ctx context.Context, count int) {
	for i := 0; i < count && ctx.Err() == nil; i++ {
		if _, ok := s.queue(s.now()); !ok {
			sleepCtx(ctx, 100*time.Millisecond)
			i--
		}
	}
	for ctx.Err() == nil && !s.flush(ctx) {
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// openLoop queues a message every interval from start+phase until stop,
// whatever the acknowledgements do (open loop: a slow server makes the
// outbox grow and the latency, measured from the due time, shows it); a
// second goroutine flushes.
func (s *sender) openLoop(ctx context.Context, start, stop time.Time, interval, phase time.Duration) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-s.wake:
			case <-done:
				for ctx.Err() == nil && !s.flush(ctx) {
					sleepCtx(ctx, 100*time.Millisecond)
				}
				return
			case <-ctx.Done():
				return
			}
			if !s.flush(ctx) {
				sleepCtx(ctx, 100*time.Millisecond)
				s.poke()
			}
		}
	}()
	for due := start.Add(phase); due.Before(stop) && ctx.Err() == nil; due = due.Add(interval) {
		if d := due.Sub(s.now()); d > 0 {
			sleepCtx(ctx, d)
		}
		late := s.now().Sub(due)
		s.mu.Lock()
		s.late = append(s.late, late)
		s.mu.Unlock()
		if _, ok := s.queue(due); ok {
			s.poke()
		}
	}
	close(done)
	wg.Wait()
}

func (s *sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// totals returns queued and acknowledged counts and send errors.
func (s *sender) totals() (queued, acked, errs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sched), int(s.acked), s.errs
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// receiveLoop keeps d receiving into rec until ctx ends; a Receive that
// fails is counted and restarted. With quiet > 0 Receive returns after that
// much silence and is called again.
func (f *Fleet) receiveLoop(ctx context.Context, d *Device, rec *recorder, errs *atomic.Int64, quiet time.Duration) {
	for ctx.Err() == nil {
		err := d.C.Receive(ctx, quiet, func(m store.Message) error {
			rec.note(m.Text)
			if f.cfg.Receipts {
				return d.C.MarkReadMessage(m) // shown, so read
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil && quiet > 0 {
			continue
		}
		errs.Add(1)
		f.cfg.Logger.Warn("receive failed; restarting", "device", d.Address, "err", err)
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// runSenders starts every sender from start until stop: at rate messages
// per second in all, spread evenly over the senders and phased so that
// their sends interleave, or flat out when rate is 0. Wait on the result.
func runSenders(ctx context.Context, senders []*sender, rate float64, start, stop time.Time) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rate > 0 {
				interval := time.Duration(float64(len(senders)) / rate * float64(time.Second))
				s.openLoop(ctx, start, stop, interval, interval*time.Duration(i)/time.Duration(len(senders)))
			} else {
				s.flatOut(ctx, stop, 0)
			}
		}()
	}
	return &wg
}
