package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	// Memory, when set, makes the server collect garbage and return the
	// freed memory to the OS, and answers its live memory (the server's
	// pprof listener, MemoryPath). Idle calls it before each RSS reading of
	// the baseline and the hold, so that the RSS figures per session are
	// not the login phase's heap kept by the runtime.
	Memory func(ctx context.Context) (MemSample, error)
}

// MemoryPath is where a server's pprof listener answers a MemSample
// (`hearth serve --pprof`), after a GC and returning freed memory to the OS.
const MemoryPath = "/debug/hearth/memory"

// MemSample is a server's live memory.
type MemSample struct {
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	HeapAlloc  uint64 `json:"heap_alloc_bytes"` // the live objects in HeapInuse
	StackInuse uint64 `json:"stack_inuse_bytes"`
	Goroutines int    `json:"goroutines"`
}

// FetchMemory asks the pprof listener at addr (HOST:PORT, loopback) for
// a MemSample.
func FetchMemory(ctx context.Context, addr string) (MemSample, error) {
	var m MemSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+MemoryPath, nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("loadgen: server memory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("loadgen: server memory: %s (is the server's --pprof listener at %s?)", resp.Status, addr)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&m); err != nil {
		return m, fmt.Errorf("loadgen: server memory: %w", err)
	}
	return m, nil
}

// memThenRSS samples the server's memory (if p.Memory is set) and then
// its RSS.
func memThenRSS(ctx context.Context, p IdleParams, pid int, now time.Time) (MemSample, procSample, error) {
	var m MemSample
	if p.Memory != nil {
		var err error
		if m, err = p.Memory(ctx); err != nil {
			return m, procSample{}, err
		}
	}
	ps, err := readProc(pid, now)
	return m, ps, err
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
	baseMem, base, err := memThenRSS(ctx, p, f.cfg.ServerPID, now())
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
	if p.Memory != nil && ctx.Err() == nil {
		heldMem, held, err := memThenRSS(ctx, p, f.cfg.ServerPID, now())
		if err != nil {
			return nil, err
		}
		n := float64(p.Sessions)
		fig.Freed = &IdleFreed{RSSBaselineMB: mb(base.rssKB), RSSHeldMB: mb(held.rssKB),
			RSSBytesPerSession:   float64(held.rssKB-base.rssKB) * 1024 / n,
			HeapBytesPerSession:  (float64(heldMem.HeapInuse) - float64(baseMem.HeapInuse)) / n,
			LiveBytesPerSession:  (float64(heldMem.HeapAlloc) - float64(baseMem.HeapAlloc)) / n,
			StackBytesPerSession: (float64(heldMem.StackInuse) - float64(baseMem.StackInuse)) / n,
			GoroutinesPerSession: float64(heldMem.Goroutines-baseMem.Goroutines) / n}
	}
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
