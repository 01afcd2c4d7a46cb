package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Receive quiet periods (see receiveLoop): 0, Receive runs until the run
// ends (it prints everything that arrives, also while catching up).
const (
	pairsQuiet   = 0
	backlogQuiet = 0
)

// PairsParams configure the 1:1 workload.
type PairsParams struct {
	Users    int           // even: users 2k and 2k+1 talk to each other, both directions
	Rate     float64       // messages per second over all senders; 0: flat out (each sender waits for its ack)
	Duration time.Duration // sending time
	Size     int           // plaintext bytes per message (before MLS and framing)
	Drain    time.Duration // after sending stops: how long to wait for acks and deliveries
	Wire     bool          // server-only load after the set-up (wire.go)
}

func (p *PairsParams) check() error {
	if p.Users < 2 || p.Users%2 != 0 {
		return fmt.Errorf("loadgen: pairs needs an even number of users ≥ 2 (got %d)", p.Users)
	}
	if p.Duration <= 0 || p.Rate < 0 || p.Size < 0 {
		return errors.New("loadgen: duration must be positive, rate and size not negative")
	}
	if p.Drain <= 0 {
		p.Drain = 30 * time.Second
	}
	return nil
}

// Pairs runs 1:1 traffic between Users/2 pairs of fresh users.
func Pairs(ctx context.Context, f *Fleet, p PairsParams) (*Report, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.Wire && f.cfg.Receipts {
		// Wire receivers ack without decrypting: no receipt would be sent.
		return nil, errors.New("loadgen: receipts need the real clients: --receipts and --wire do not go together")
	}
	r := &Report{Workload: "pairs", Run: f.run, Machine: machine(),
		Params: map[string]any{"users": p.Users, "rate": p.Rate, "duration": p.Duration.String(), "size": p.Size, "wire": p.Wire, "receipts": f.cfg.Receipts}}
	t0 := f.cfg.Now()
	devs, err := f.Add(ctx, p.Users)
	if err != nil {
		return nil, err
	}
	var pairs [][2]*Device
	for i := 0; i+1 < len(devs); i += 2 {
		pairs = append(pairs, [2]*Device{devs[i], devs[i+1]})
	}
	return r, f.traffic(ctx, pairs, p, r, t0)
}

// traffic warms up every pair (the first message creates the MLS group),
// then sends measured messages both ways and fills r.
func (f *Fleet) traffic(ctx context.Context, pairs [][2]*Device, p PairsParams, r *Report, t0 time.Time) error {
	now := f.cfg.Now
	rec := newRecorder(f.run, now)
	rctx, stopRecv := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	var recvErrs atomic.Int64
	for _, pr := range pairs {
		for _, d := range pr {
			rwg.Add(1)
			go func() { defer rwg.Done(); f.receiveLoop(rctx, d, rec, &recvErrs, pairsQuiet) }()
		}
	}
	defer func() { stopRecv(); rwg.Wait() }()
	var senders []*sender
	for k, pr := range pairs {
		senders = append(senders,
			newSender(2*k, pr[0], pr[1].Address, f.run, p.Size, now),
			newSender(2*k+1, pr[1], pr[0].Address, f.run, p.Size, now))
	}
	if err := f.warmUp(ctx, senders, rec); err != nil {
		return err
	}
	if p.Wire {
		stopRecv()
		rwg.Wait()
		ws, err := f.wirePairs(ctx, pairs, senders, rec, p.Size)
		if err != nil {
			return err
		}
		defer stopWire(ws)
	}
	r.Setup = now().Sub(t0).Seconds()

	srv, self := f.watch()
	start := now().Add(50 * time.Millisecond)
	stop := start.Add(p.Duration)
	sctx, cancel := context.WithDeadline(ctx, stop.Add(p.Drain))
	defer cancel()
	swg := runSenders(sctx, senders, p.Rate, start, stop)
	progress := f.progress(r.Workload, start, p.Duration, senders, []*recorder{rec}, srv, self)
	swg.Wait()
	sendersDone := now()
	missing := f.awaitDeliveries(sctx, senders, rec)
	progress()
	f.finish(r, senders, rec, srv, self, start, sendersDone)
	if missing > 0 {
		r.Notes = append(r.Notes, drainNote(missing, fmt.Sprintf("%v after the last message was due", p.Drain)))
	}
	if p.Wire {
		r.wireCPUNote()
	}
	if n := recvErrs.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d receive loops failed and were restarted (see --verbose)", n))
	}
	return nil
}

// warmUp sends one unmeasured message per sender, in order within each
// pair (the first creates the conversation, the second uses it), and waits
// until each arrived.
func (f *Fleet) warmUp(ctx context.Context, senders []*sender, rec *recorder) error {
	sem := make(chan struct{}, f.cfg.Parallel)
	errs := make(chan error, len(senders)/2+1)
	var wg sync.WaitGroup
	for k := 0; k+1 < len(senders); k += 2 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, s := range senders[k : k+2] {
				if err := f.warm(ctx, s, rec); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (f *Fleet) warm(ctx context.Context, s *sender, rec *recorder) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := s.dev.C.Queue(s.to, warmText(s.run, s.idx))
	if err == nil {
		err = s.dev.C.Flush(wctx, id)
	}
	if err != nil {
		return fmt.Errorf("loadgen: warm-up %s -> %s: %w", s.dev.Address, s.to, err)
	}
	select {
	case <-rec.warmSeen(s.idx):
		return nil
	case <-wctx.Done():
		return fmt.Errorf("loadgen: warm-up message %s -> %s not received within 2 minutes", s.dev.Address, s.to)
	}
}

// awaitDeliveries waits until every acknowledged message arrived, or ctx
// ends. It returns how many acknowledged messages had not arrived when it
// stopped waiting (0: all did).
func (f *Fleet) awaitDeliveries(ctx context.Context, senders []*sender, rec *recorder) (missing int) {
	for {
		acked := 0
		for _, s := range senders {
			_, a, _ := s.totals()
			acked += a
		}
		d, _ := rec.counts()
		if d >= acked || ctx.Err() != nil {
			return max(acked-d, 0)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// drainNote is the report's note when the wait for deliveries ended with
// missing acknowledged messages not delivered: the report counts them as
// lost, and cannot tell them from deliveries later than the wait.
func drainNote(missing int, waited string) string {
	return fmt.Sprintf("the wait for deliveries ended (%s) with %d acknowledged messages not delivered: they count as lost here, and a delivery later than the wait would count the same", waited, missing)
}

// watch starts sampling the server (when its PID is known) and this process.
func (f *Fleet) watch() (srv, self *procWatch) {
	f.markStages()
	if f.cfg.ServerPID > 0 {
		srv = watchProc(f.cfg.ServerPID, f.cfg.Now)
	}
	return srv, watchProc(0, f.cfg.Now)
}

// progress prints a line every two seconds until the returned func is called.
func (f *Fleet) progress(name string, start time.Time, total time.Duration, senders []*sender, recs []*recorder, srv, self *procWatch) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			q, a := 0, 0
			for _, s := range senders {
				sq, sa, _ := s.totals()
				q, a = q+sq, a+sa
			}
			d, dup := 0, 0
			var p99 time.Duration
			for _, r := range recs {
				rd, rdup := r.counts()
				d, dup, p99 = d+rd, dup+rdup, max(p99, r.recentP99(1000))
			}
			n := f.cfg.Now()
			line := fmt.Sprintf("[%s] %5.1fs/%.0fs sent %d acked %d delivered %d dup %d p99(last 1000) %.1fms",
				name, n.Sub(start).Seconds(), total.Seconds(), q, a, d, dup, ms(p99))
			if srv != nil {
				c, m := srv.current(n)
				line += fmt.Sprintf(" | server %.2f cores %.0f MB", c, m)
			}
			c, _ := self.current(n)
			fmt.Fprintf(f.cfg.Progress, "%s | bench %.2f cores\n", line, c)
		}
	}()
	return func() { close(stop); <-done }
}

// reportStages puts the server's stage latencies into r.
func (f *Fleet) reportStages(r *Report) {
	st, err := f.stageReport()
	if err != nil {
		r.Notes = append(r.Notes, "server stages: "+err.Error())
	}
	if len(st) > 0 {
		r.Stages = st
	}
}

// finish computes counts, loss, rates and latencies into r.
func (f *Fleet) finish(r *Report, senders []*sender, rec *recorder, srv, self *procWatch, start, sendersDone time.Time) {
	end := f.cfg.Now()
	var ackLat, late []time.Duration
	for _, s := range senders {
		q, a, e := s.totals()
		r.Sent, r.Acked, r.SendErrors = r.Sent+q, r.Acked+a, r.SendErrors+e
		r.Unacked += q - a
		for seq := uint64(1); seq <= uint64(a); seq++ {
			if !rec.has(key{s.idx, seq}) {
				r.Lost++
			}
		}
		s.mu.Lock()
		ackLat = append(ackLat, s.ackLat...)
		late = append(late, s.late...)
		s.mu.Unlock()
	}
	rec.mu.Lock()
	r.Delivered, r.Duplicates, r.Foreign, r.OutOfOrder = rec.delivered, rec.dups, rec.foreign, rec.reordered
	lat, last, fromSrv := slices.Clone(rec.lat), rec.last, slices.Clone(rec.srvLat)
	rec.mu.Unlock()
	r.Latency, r.AckLatency = Summarize(lat), Summarize(ackLat)
	if len(fromSrv) > 0 {
		sl := Summarize(fromSrv)
		r.ServerLatency = &sl
	}
	if len(late) > 0 {
		sl := Summarize(late)
		r.SendLateness = &sl
	}
	sendSpan := sendersDone.Sub(start)
	span := max(sendSpan, last.Sub(start))
	r.Seconds = span.Seconds()
	r.SentRate = perSecond(r.Sent, sendSpan)
	r.AckedRate = perSecond(r.Acked, sendSpan)
	r.DelivRate = perSecond(r.Delivered, span)
	if srv != nil {
		if ps, err := srv.finish(end); err == nil {
			r.Server = &ps
		} else {
			r.Notes = append(r.Notes, "server stats: "+err.Error())
		}
	}
	r.Bench, _ = self.finish(end)
	r.cpuPerMessage()
	f.reportStages(r)
	r.Machine.LoadEnd = loadavg()
	r.DialRetries = f.DialRetries()
}
