package federation

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Mode is the federation policy mode chosen by the admin.
type Mode string

// Policy modes.
const (
	ModeOpen      Mode = "open"      // any server, except denied ones
	ModeAllowlist Mode = "allowlist" // only allowed servers
	ModeDenylist  Mode = "denylist"  // any server except denied ones (open with a list)
)

// ParseMode validates a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOpen, ModeAllowlist, ModeDenylist:
		return m, nil
	}
	return "", fmt.Errorf("federation mode %q: want open, allowlist or denylist", s)
}

// Policy decides which servers this one federates with. It is safe for
// concurrent use; the admin changes it at run time.
type Policy struct {
	mu    sync.RWMutex
	mode  Mode
	allow map[string]bool
	deny  map[string]bool
}

// NewPolicy returns a policy in mode with the given lists.
func NewPolicy(mode Mode, allow, deny []string) *Policy {
	p := &Policy{mode: mode, allow: map[string]bool{}, deny: map[string]bool{}}
	for _, d := range allow {
		p.allow[d] = true
	}
	for _, d := range deny {
		p.deny[d] = true
	}
	return p
}

// Allowed reports whether traffic from or to domain is permitted.
func (p *Policy) Allowed(domain string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.deny[domain] {
		return false
	}
	if p.mode == ModeAllowlist {
		return p.allow[domain]
	}
	return true
}

// SetMode changes the mode.
func (p *Policy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

// Allow adds domain to the allow list and removes it from the deny list.
func (p *Policy) Allow(domain string) {
	p.mu.Lock()
	p.allow[domain] = true
	delete(p.deny, domain)
	p.mu.Unlock()
}

// Deny adds domain to the deny list and removes it from the allow list.
func (p *Policy) Deny(domain string) {
	p.mu.Lock()
	p.deny[domain] = true
	delete(p.allow, domain)
	p.mu.Unlock()
}

// RateLimiter is a token bucket per origin.
type RateLimiter struct {
	Rate  float64 // tokens per second
	Burst float64
	Now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// SetRate changes the rate and burst for every origin from now on (a
// configuration reload); tokens already in a bucket above the new burst
// are cut to it on the next Take.
func (r *RateLimiter) SetRate(rate, burst float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rate, r.Burst = rate, burst
}

// Take spends n tokens for origin; when there are not enough it returns
// false and how long until there will be.
func (r *RateLimiter) Take(origin string, n float64) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil {
		r.buckets = map[string]*bucket{}
	}
	now := r.Now()
	b, ok := r.buckets[origin]
	if !ok {
		b = &bucket{tokens: r.Burst, last: now}
		r.buckets[origin] = b
	}
	b.tokens = math.Min(r.Burst, b.tokens+now.Sub(b.last).Seconds()*r.Rate)
	b.last = now
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	wait := time.Duration((n - b.tokens) / r.Rate * float64(time.Second))
	return false, wait
}

// Backoff computes retry delays: exponential from Base up to Max, with
// full jitter so that many queues do not retry in step.
type Backoff struct {
	Base time.Duration // default 500ms
	Max  time.Duration // default 5 minutes
	Rand *rand.Rand    // nil: the global source
}

// Delay returns the wait before retry number attempt (1 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if max <= 0 {
		max = 5 * time.Minute
	}
	if attempt < 1 {
		attempt = 1
	}
	ceil := max
	if attempt < 40 {
		if d := base << (attempt - 1); d > 0 && d < max {
			ceil = d
		}
	}
	// Full jitter in [ceil/2, ceil]: never zero, so a dead peer is not hammered.
	half := int64(ceil / 2)
	var j int64
	if b.Rand != nil {
		j = b.Rand.Int64N(half + 1)
	} else {
		j = rand.Int64N(half + 1)
	}
	return time.Duration(half + j)
}
