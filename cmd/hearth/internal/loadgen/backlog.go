package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BacklogParams configure the offline-backlog workload.
type BacklogParams struct {
	Messages int           // messages stored while the receiver is offline
	Senders  int           // users sending them (each queues its share, then one Flush)
	Size     int           // plaintext bytes per message
	Drain    time.Duration // longest wait for the store and for the drain each
	Wire     bool          // server-only load after the set-up (wire.go)
}

// Backlog logs in Senders+1 users, takes the receiver offline, has the
// senders store Messages for it (store rate: all acknowledged), then brings
// the receiver back and times until every message was delivered (drain
// rate; "in sync" = the last waiting message is decrypted and stored).
func Backlog(ctx context.Context, f *Fleet, p BacklogParams) (*Report, error) {
	if p.Messages <= 0 || p.Senders <= 0 || p.Size < 0 {
		return nil, errors.New("loadgen: backlog needs messages > 0 and senders > 0")
	}
	if p.Drain <= 0 {
		p.Drain = 5 * time.Minute
	}
	r := &Report{Workload: "backlog", Run: f.run, Machine: machine(),
		Params: map[string]any{"messages": p.Messages, "senders": p.Senders, "size": p.Size, "wire": p.Wire}}
	now := f.cfg.Now
	t0 := now()
	devs, err := f.Add(ctx, p.Senders+1)
	if err != nil {
		return nil, err
	}
	recvDev := devs[0]
	rec := newRecorder(f.run, now)
	var senders []*sender
	for i, d := range devs[1:] {
		senders = append(senders, newSender(i, d, recvDev.Address, f.run, p.Size, now))
	}
	var recvErrs atomic.Int64
	online := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); f.receiveLoop(rctx, recvDev, rec, &recvErrs, backlogQuiet) }()
		return func() { cancel(); <-done }
	}
	offline := online()
	if err := f.warmUp1(ctx, senders, rec); err != nil {
		offline()
		return nil, err
	}
	offline()
	var wr *wireDev
	if p.Wire {
		var ws []*wireDev
		if wr, ws, err = f.wireBacklog(ctx, recvDev, senders, rec, p.Size); err != nil {
			return nil, err
		}
		defer stopWire(ws)
		wr.stop() // the receiver goes offline
	}
	if err := f.CloseDevice(recvDev); err != nil {
		return nil, err
	}
	r.Setup = now().Sub(t0).Seconds()
	b := &BacklogFigures{}
	r.Backlog = b

	// Store: every sender queues its share of the messages and flushes
	// them with one Flush (one conversation: one Send in flight at a time,
	// without the per-call overhead of a Flush per message).
	srv, self := f.watch()
	sctx, cancel := context.WithTimeout(ctx, p.Drain)
	defer cancel()
	start := now()
	var wg sync.WaitGroup
	for i, s := range senders {
		n := p.Messages / len(senders)
		if i < p.Messages%len(senders) {
			n++
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.burst(sctx, n) }()
	}
	progress := f.progress("backlog store", start, p.Drain, senders, []*recorder{rec}, srv, self)
	wg.Wait()
	progress()
	stored := now()
	acked := 0
	for _, s := range senders {
		_, a, _ := s.totals()
		acked += a
	}
	b.Messages, b.StoreSeconds = acked, stored.Sub(start).Seconds()
	b.StoreRate = perSecond(acked, stored.Sub(start))
	if srv != nil {
		if ps, err := srv.finish(now()); err == nil {
			b.ServerStore = &ps
		}
	}
	self.finish(now())

	// Drain: the receiver comes back.
	srv, self = f.watch()
	drainStart := now()
	if wr != nil {
		if err := f.startWire(ctx, wr, false); err != nil {
			return nil, err
		}
		offline = wr.stop
	} else {
		if err := f.Open(recvDev); err != nil {
			return nil, err
		}
		drainStart = now()
		offline = online()
	}
	dctx, dcancel := context.WithTimeout(ctx, p.Drain)
	progress = f.progress("backlog drain", drainStart, p.Drain, senders, []*recorder{rec}, srv, self)
	f.awaitDeliveries(dctx, senders, rec)
	dcancel()
	progress()
	offline()
	rec.mu.Lock()
	last := rec.last
	rec.mu.Unlock()
	if !last.IsZero() {
		b.DrainSeconds = last.Sub(drainStart).Seconds()
		b.InSyncSeconds = b.DrainSeconds
		d, _ := rec.counts()
		b.DrainRate = perSecond(d, last.Sub(drainStart))
	}
	f.finish(r, senders, rec, srv, self, start, stored)
	if r.Server != nil {
		b.ServerDrain, r.Server = r.Server, nil
	}
	b.BenchDrain = r.Bench
	r.Latency = Latency{} // send→receive spans the offline time here: meaningless
	r.Seconds = b.StoreSeconds + b.DrainSeconds
	r.DelivRate = b.DrainRate
	if d, _ := rec.counts(); d < acked {
		r.Notes = append(r.Notes, fmt.Sprintf("drain incomplete after %v: %d of %d delivered", p.Drain, d, acked))
	}
	return r, nil
}

// warmUp1 sends one unmeasured message from each sender (one at a time per
// sender, all senders in parallel) and waits until each arrived.
func (f *Fleet) warmUp1(ctx context.Context, senders []*sender, rec *recorder) error {
	sem := make(chan struct{}, f.cfg.Parallel)
	errs := make(chan error, len(senders))
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f.warm(ctx, s, rec); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
