package loadgen

import (
	"context"
	"time"
)

// Federation runs the pairs workload across two servers: user k of home
// (fleet a) and user k of fleet b, on another homeserver, talk both ways,
// so every message takes a federated hop. Server figures are fleet a's.
func Federation(ctx context.Context, a, b *Fleet, p PairsParams) (*Report, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	r := &Report{Workload: "federation", Run: a.run, Machine: machine(),
		Params: map[string]any{"pairs": p.Users / 2, "rate": p.Rate, "duration": p.Duration.String(), "size": p.Size,
			"home": a.cfg.Domain, "remote": b.cfg.Domain}}
	t0 := time.Now()
	da, err := a.Add(ctx, p.Users/2)
	if err != nil {
		return nil, err
	}
	db, err := b.Add(ctx, p.Users/2)
	if err != nil {
		return nil, err
	}
	pairs := make([][2]*Device, len(da))
	for i := range da {
		pairs[i] = [2]*Device{da[i], db[i]}
	}
	return r, a.traffic(ctx, pairs, p, r, t0)
}
