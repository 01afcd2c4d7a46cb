package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdleRamp is how many sessions per second the idle workload
// reopens unless told otherwise.
const DefaultIdleRamp = 200

// IdleParams configure the idle-sessions workload.
type IdleParams struct {
	Sessions int
	Hold     time.Duration // how long the sessions are held while CPU is measured
	// Ramp is how many sessions per second are reopened for the hold
	// (0: DefaultIdleRamp). Reopening all at once is a reconnect herd,
	// which is another measurement than holding idle sessions.
	Ramp float64
	// Online returns the server's count of online sessions (the admin
	// status); nil: not checked.
	Online func(ctx context.Context) (int, error)
	// Wire holds bare wire sessions (client/session: Hello, Sync, acks)
	// instead of full clients (wire.go).
	Wire bool
}

// Idle logs in Sessions users, closes their sessions, measures the server's
// baseline, opens every session again (each device receiving, nothing
// sent) at p.Ramp sessions per second and measures the server's RSS and
// CPU while they are held.
func Idle(ctx context.Context, f *Fleet, p IdleParams) (*Report, error) {
	if p.Sessions <= 0 || p.Hold <= 0 || p.Ramp < 0 {
		return nil, errors.New("loadgen: idle needs sessions > 0, a positive hold time and a ramp >= 0")
	}
	if p.Ramp == 0 {
		p.Ramp = DefaultIdleRamp
	}
	if f.cfg.ServerPID <= 0 {
		return nil, errors.New("loadgen: idle measures the server's memory and needs its PID (local server, --dir or --pid)")
	}
	now := f.cfg.Now
	r := &Report{Workload: "idle", Run: f.run, Machine: machine(),
		Params: map[string]any{"sessions": p.Sessions, "hold": p.Hold.String(), "ramp_per_second": p.Ramp, "wire": p.Wire}}
	fig := &IdleFigures{Sessions: p.Sessions, OnlineSeen: -1, HoldSeconds: p.Hold.Seconds()}
	r.Idle = fig
	before, err := readProc(f.cfg.ServerPID, now())
	if err != nil {
		return nil, err
	}
	fig.RSSBeforeSetupMB = mb(before.rssKB)
	t0 := now()
	devs, err := f.Add(ctx, p.Sessions)
	if err != nil {
		return nil, err
	}
	rec := newRecorder(f.run, now)
	ws := make([]*wireDev, len(devs))
	defer func() { stopWire(ws) }()
	for i, d := range devs {
		if p.Wire {
			if ws[i], err = f.prepareWire(d, rec); err != nil {
				return nil, err
			}
		} else if err := f.CloseDevice(d); err != nil {
			return nil, err
		}
	}
	if err := f.awaitOnline(ctx, p.Online, func(n int) bool { return n == 0 }); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 2*time.Second)
	base, err := readProc(f.cfg.ServerPID, now())
	if err != nil {
		return nil, err
	}
	fig.RSSBaselineMB = mb(base.rssKB)

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var recvErrs atomic.Int64
	defer func() { stop(); wg.Wait() }()
	ramp0 := now()
	for i, d := range devs {
		sleepCtx(ctx, ramp0.Add(time.Duration(float64(i)/p.Ramp*float64(time.Second))).Sub(now()))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p.Wire {
			if err := f.startWire(ctx, ws[i], false); err != nil {
				return nil, err
			}
		} else {
			if err := f.Open(d); err != nil {
				return nil, err
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.receiveLoop(rctx, d, rec, &recvErrs, 0) }()
		}
		if (i+1)%1000 == 0 {
			fmt.Fprintf(f.cfg.Progress, "idle: %d/%d sessions reopened (%.0fs)\n", i+1, len(devs), now().Sub(ramp0).Seconds())
		}
	}
	fig.RampSeconds = now().Sub(ramp0).Seconds()
	if err := f.awaitOnline(ctx, p.Online, func(n int) bool { fig.OnlineSeen = n; return n >= p.Sessions }); err != nil {
		return nil, err
	}
	r.Setup = now().Sub(t0).Seconds()
	fmt.Fprintf(f.cfg.Progress, "idle: %d sessions online; holding %v\n", p.Sessions, p.Hold)
	srv, self := f.watch()
	sleepCtx(ctx, p.Hold)
	f.finish(r, nil, rec, srv, self, now().Add(-p.Hold), now())
	if r.Server != nil {
		fig.RSSHeldMB = r.Server.RSSEndMB
		fig.KBPerSession = (r.Server.RSSEndMB - fig.RSSBeforeSetupMB) * 1024 / float64(p.Sessions)
		fig.KBPerSessionBase = (r.Server.RSSEndMB - fig.RSSBaselineMB) * 1024 / float64(p.Sessions)
		fig.CPUPerSessionUs = r.Server.CPUSeconds / p.Hold.Seconds() / float64(p.Sessions) * 1e6
	}
	r.DialRetries = f.DialRetries()
	if n := recvErrs.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d receive loops failed and were restarted", n))
	}
	return r, ctx.Err()
}

// awaitOnline polls the server's online-session count until ok (at most 2 minutes).
func (f *Fleet) awaitOnline(ctx context.Context, online func(context.Context) (int, error), ok func(int) bool) error {
	if online == nil {
		sleepCtx(ctx, 3*time.Second)
		return ctx.Err()
	}
	deadline := f.cfg.Now().Add(2 * time.Minute)
	last := -1
	for {
		n, err := online(ctx)
		if err != nil {
			return fmt.Errorf("loadgen: server status: %w", err)
		}
		if ok(n) {
			return nil
		}
		if n != last {
			fmt.Fprintf(f.cfg.Progress, "idle: server reports %d online sessions\n", n)
			last = n
		}
		if f.cfg.Now().After(deadline) {
			return fmt.Errorf("loadgen: server still reports %d online sessions after 2 minutes", n)
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}
