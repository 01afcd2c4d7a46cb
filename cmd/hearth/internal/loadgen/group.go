package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// GroupParams configure the group workload.
type GroupParams struct {
	Size     int     // members, one device each
	Senders  int     // members that send (the first ones)
	Rate     float64 // messages per second over all senders; 0: flat out
	Duration time.Duration
	MsgSize  int
	Drain    time.Duration
	Wire     bool // server-only load after the set-up (wire.go)
}

// Group creates one group of Size users, then Senders of them send to
// it. Every acknowledged message must reach every other member exactly
// once. Latency is per delivery (message × device); the report's FanOut
// is the fan-out-complete latency (due time → the last member has it).
//
// With full clients the first member creates the group in commits of
// claimChunk members, every member joins from its Welcome and processes
// the later commits. With Wire the members but the creator log in and go
// wire at once, and the creator adds them all in the client's large
// commits (groupwire.go); the report then also has the latencies from the
// server's acceptance of each message (ServerLatency, FanOutServer).
func Group(ctx context.Context, f *Fleet, p GroupParams) (*Report, error) {
	if p.Size < 2 || p.Senders < 1 || p.Senders > p.Size || p.Duration <= 0 || p.Rate < 0 {
		return nil, errors.New("loadgen: group needs size ≥ 2, 1 ≤ senders ≤ size, a positive duration")
	}
	if p.Drain <= 0 {
		p.Drain = time.Minute
	}
	now := f.cfg.Now
	r := &Report{Workload: "group", Run: f.run, Machine: machine(), Params: map[string]any{"size": p.Size,
		"senders": p.Senders, "rate": p.Rate, "duration": p.Duration.String(), "msg_size": p.MsgSize, "wire": p.Wire}}
	t0 := now()
	recs := make([]*recorder, p.Size)
	for i := range recs {
		recs[i] = newRecorder(f.run, now)
	}
	var (
		devs     []*Device
		senders  = make([]*sender, p.Senders)
		recvErrs atomic.Int64
	)
	if p.Wire {
		ds, ws, conv, c, err := f.groupWire(ctx, p, r, recs)
		if err != nil {
			return nil, err
		}
		defer stopWire(ws)
		devs = ds
		for i := range senders {
			senders[i] = newSender(i, devs[i], conv, f.run, p.MsgSize, now)
			senders[i].w = newWireOut(ws[i], c)
		}
	} else {
		ds, conv, stop, err := f.groupClients(ctx, p, r, recs, &recvErrs)
		if err != nil {
			return nil, err
		}
		defer stop()
		devs = ds
		for i := range senders {
			senders[i] = newSender(i, devs[i], conv, f.run, p.MsgSize, now)
		}
		warm := now()
		if err := f.groupWarm(ctx, senders[0], recs[1:]); err != nil {
			return nil, err
		}
		r.Notes = append(r.Notes, fmt.Sprintf("every member joined (first message received by all) %.2fs later", now().Sub(warm).Seconds()))
	}
	r.Setup = now().Sub(t0).Seconds()

	srv, self := f.watch()
	start := now().Add(50 * time.Millisecond)
	stop := start.Add(p.Duration)
	sctx, cancel := context.WithDeadline(ctx, stop.Add(p.Drain))
	defer cancel()
	swg := runSenders(sctx, senders, p.Rate, start, stop)
	progress := f.progress("group", start, p.Duration, senders, recs, srv, self)
	swg.Wait()
	sendersDone := now()
	f.awaitGroup(sctx, senders, devs, recs)
	progress()
	f.finishGroup(r, senders, devs, recs, srv, self, start, sendersDone)
	if p.Wire {
		r.wireCPUNote()
	}
	if n := recvErrs.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d receive loops failed and were restarted", n))
	}
	return r, nil
}

// groupClients sets the group up with a full client on every member:
// each receives (into recs) until stop is called.
func (f *Fleet) groupClients(ctx context.Context, p GroupParams, r *Report, recs []*recorder, recvErrs *atomic.Int64) ([]*Device, string, func(), error) {
	devs, err := f.Add(ctx, p.Size)
	if err != nil {
		return nil, "", nil, err
	}
	rctx, stopRecv := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	stop := func() { stopRecv(); rwg.Wait() }
	for i, d := range devs {
		rwg.Add(1)
		go func() { defer rwg.Done(); f.receiveLoop(rctx, d, recs[i], recvErrs, pairsQuiet) }()
	}
	var members []string
	for _, d := range devs[1:] {
		members = append(members, d.Address)
	}
	created := f.cfg.Now()
	conv, err := f.createGroup(ctx, devs[0], members)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	r.Notes = append(r.Notes, fmt.Sprintf("group of %d created (commits of %d members) in %.2fs",
		p.Size, claimChunk, f.cfg.Now().Sub(created).Seconds()))
	return devs, conv, stop, nil
}

// claimChunk is how many users one CreateGroup or AddMembers call names.
// The client claims KeyPackages for all of them in one request (the server
// refuses more than 64 users) and adds them in one commit, whose Welcome
// with suite 0xF001 grows by about 6.7 KB per member: 64 members make
// 433 KB, over the default max_message_bytes (256 KiB); 32 fit.
const claimChunk = 32

// createGroup creates the group with the first members and adds the rest
// in chunks (each chunk one commit).
func (f *Fleet) createGroup(ctx context.Context, creator *Device, members []string) (string, error) {
	first := members[:min(len(members), claimChunk)]
	conv, err := creator.C.Groups().Create(ctx, "bench "+f.run, first)
	if err != nil {
		return "", fmt.Errorf("loadgen: create group with %d members: %w", len(first)+1, err)
	}
	for rest := members[len(first):]; len(rest) > 0; {
		n := min(len(rest), claimChunk)
		if err := creator.C.Groups().AddMembers(ctx, conv, rest[:n]); err != nil {
			return "", fmt.Errorf("loadgen: add %d members to the group: %w", n, err)
		}
		rest = rest[n:]
		fmt.Fprintf(f.cfg.Progress, "group: %d of %d members added\n", len(members)-len(rest), len(members))
	}
	return conv, nil
}

// groupWarm sends one unmeasured message from the first sender and waits
// until every other member (recs) has it: all have joined and decrypt.
func (f *Fleet) groupWarm(ctx context.Context, s *sender, recs []*recorder) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	id, err := s.dev.C.Queue(s.to, warmText(s.run, s.idx))
	if err == nil {
		err = s.dev.C.Flush(wctx, id)
	}
	if err != nil {
		return fmt.Errorf("loadgen: group warm-up: %w", err)
	}
	for i, r := range recs {
		select {
		case <-r.warmSeen(s.idx):
		case <-wctx.Done():
			return fmt.Errorf("loadgen: group warm-up not received by member %d within 10 minutes", i)
		}
	}
	return nil
}

// expected is how many measured messages member i should have.
func expected(senders []*sender, devs []*Device, i int) int {
	n := 0
	for _, s := range senders {
		if s.dev != devs[i] {
			_, a, _ := s.totals()
			n += a
		}
	}
	return n
}

func (f *Fleet) awaitGroup(ctx context.Context, senders []*sender, devs []*Device, recs []*recorder) {
	for ctx.Err() == nil {
		done := true
		for i, r := range recs {
			if d, _ := r.counts(); d < expected(senders, devs, i) {
				done = false
				break
			}
		}
		if done {
			return
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// finishGroup fills r: counts over every (message, member) delivery.
func (f *Fleet) finishGroup(r *Report, senders []*sender, devs []*Device, recs []*recorder, srv, self *procWatch, start, sendersDone time.Time) {
	var all, ackLat, fromSrv []time.Duration
	complete := map[key]time.Duration{}    // message → latency to the last member
	completeSrv := map[key]time.Duration{} // the same from the server's acceptance
	var last time.Time
	for i, rec := range recs {
		rec.mu.Lock()
		r.Delivered += rec.delivered
		r.Duplicates += rec.dups
		r.Foreign += rec.foreign
		r.OutOfOrder += rec.reordered
		all = append(all, rec.lat...)
		fromSrv = append(fromSrv, rec.srvLat...)
		if rec.last.After(last) {
			last = rec.last
		}
		rec.mu.Unlock()
		for _, s := range senders {
			if s.dev == devs[i] {
				continue
			}
			_, a, _ := s.totals()
			rec.mu.Lock()
			for seq := uint64(1); seq <= uint64(a); seq++ {
				k := key{s.idx, seq}
				l, ok := rec.seen[k]
				if !ok {
					r.Lost++
				} else if l > complete[k] {
					complete[k] = l
				}
				if l, ok := rec.fromSrv[k]; ok && l > completeSrv[k] {
					completeSrv[k] = l
				}
			}
			rec.mu.Unlock()
		}
	}
	for _, s := range senders {
		q, a, e := s.totals()
		r.Sent, r.Acked, r.SendErrors, r.Unacked = r.Sent+q, r.Acked+a, r.SendErrors+e, r.Unacked+q-a
		s.mu.Lock()
		ackLat = append(ackLat, s.ackLat...)
		s.mu.Unlock()
	}
	r.Latency, r.AckLatency = Summarize(slices.Clone(all)), Summarize(ackLat)
	var fan []time.Duration
	for _, l := range complete {
		fan = append(fan, l)
	}
	c := Summarize(fan)
	r.FanOut = &c
	if n := slowestNote(recs); n != "" {
		r.Notes = append(r.Notes, n)
	}
	if len(fromSrv) > 0 {
		sl := Summarize(fromSrv)
		var fs []time.Duration
		for _, l := range completeSrv {
			fs = append(fs, l)
		}
		fc := Summarize(fs)
		r.ServerLatency, r.FanOutServer = &sl, &fc
	}
	sendSpan := sendersDone.Sub(start)
	span := max(sendSpan, last.Sub(start))
	r.Seconds = span.Seconds()
	r.SentRate, r.AckedRate, r.DelivRate = perSecond(r.Sent, sendSpan), perSecond(r.Acked, sendSpan), perSecond(r.Delivered, span)
	end := f.cfg.Now()
	if srv != nil {
		if ps, err := srv.finish(end); err == nil {
			r.Server = &ps
		}
	}
	r.Bench, _ = self.finish(end)
	r.cpuPerMessage()
	f.reportStages(r)
	r.Machine.LoadEnd = loadavg()
	r.DialRetries = f.DialRetries()
}

// slowestNote names the member whose deliveries were latest (by their
// median) next to the median member: one slow member sets the fan-out
// complete figure alone. Empty with fewer than 3 members.
func slowestNote(recs []*recorder) string {
	type med struct {
		i    int
		p50  time.Duration
		p99  time.Duration
		seen int
	}
	var meds []med
	for i, rec := range recs {
		rec.mu.Lock()
		l := Summarize(slices.Clone(rec.lat))
		rec.mu.Unlock()
		if l.Count > 0 {
			meds = append(meds, med{i, l.p(0.5), l.p(0.99), l.Count})
		}
	}
	if len(meds) < 3 {
		return ""
	}
	slices.SortFunc(meds, func(a, b med) int { return cmp.Compare(a.p50, b.p50) })
	mid, last := meds[len(meds)/2], meds[len(meds)-1]
	return fmt.Sprintf("slowest member: %d (p50 %.1f ms, p99 %.1f ms over %d deliveries); the median member's p50 %.1f ms",
		last.i, ms(last.p50), ms(last.p99), last.seen, ms(mid.p50))
}
