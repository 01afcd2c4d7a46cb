package homeserver

import "errors"

// Reloadable is the part of the configuration a running server takes over
// without a restart (SIGHUP in `hearth serve`); zero fields mean the
// defaults, as in Config.
type Reloadable struct {
	RateLimit RateLimit // per-device Send limit
	// Inbound federation limit per origin server (transactions and
	// queries); FederationConfig.RatePerSecond and RateBurst.
	FederationRate, FederationBurst float64
}

// Reload applies r to the live server: sessions stay connected, and the
// next request is measured by the new limits.
func (s *Server) Reload(r Reloadable) error {
	if r.RateLimit.PerSecond < 0 || r.RateLimit.Burst < 0 || r.FederationRate < 0 || r.FederationBurst < 0 {
		return errors.New("homeserver.Reload: limits must not be negative")
	}
	rl := r.RateLimit.withDefaults()
	s.sendRate.Store(&rl)
	if s.fed != nil {
		s.fed.SetInboundRate(r.FederationRate, r.FederationBurst)
	}
	return nil
}

// withDefaults fills the zero fields: 50 per second, burst 100.
func (r RateLimit) withDefaults() RateLimit {
	if r.Burst <= 0 {
		r.Burst = 100
	}
	if r.PerSecond <= 0 {
		r.PerSecond = 50
	}
	return r
}
