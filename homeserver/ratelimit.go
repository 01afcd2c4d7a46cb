package homeserver

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"hearth/homeserver/wire"
)

// bucket is a token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// take removes one token if it can; otherwise it returns how long until
// one is available.
func (b *bucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+el*rate)
	}
	b.tokens = math.Min(float64(burst), b.tokens) // a burst lowered by Server.Reload holds at once
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
	return false, wait
}

// limiters holds per-key token buckets (key: kind + device id), shared by
// every session of a device. Idle buckets are dropped when full again.
type limiters struct {
	mu     sync.Mutex
	m      map[string]*bucket
	pruned time.Time
}

func newLimiters() *limiters { return &limiters{m: map[string]*bucket{}} }

func (l *limiters) allow(key string, now time.Time, rate float64, burst int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		b = &bucket{}
		l.m[key] = b
	}
	ok, wait := b.take(now, rate, burst)
	if len(l.m) > 10000 && now.Sub(l.pruned) > time.Minute {
		l.pruned = now
		for k, v := range l.m {
			if now.Sub(v.last) > time.Minute {
				delete(l.m, k)
			}
		}
	}
	return ok, wait
}

// check is allow as an error: CODE_RATE_LIMITED with the wait.
func (l *limiters) check(op, key string, now time.Time, rate float64, burst int) error {
	if ok, wait := l.allow(key, now, rate, burst); !ok {
		return &wire.Error{Op: op, Kind: wire.Code_CODE_RATE_LIMITED, Msg: "too many attempts", RetryAfter: max(wait.Milliseconds(), 1)}
	}
	return nil
}

// clientAddr is the key of per-address limits for the remote address a
// transport reports ("host:port"): the IP, or its /64 for IPv6 since one
// host commonly holds a whole /64 (loopback excepted). An address that
// does not parse (an in-process pipe) is its own key.
func clientAddr(remote string) string {
	a, err := netip.ParseAddr(remote)
	if ap, perr := netip.ParseAddrPort(remote); perr == nil {
		a, err = ap.Addr(), nil
	}
	if err != nil {
		return remote
	}
	if a = a.Unmap().WithZone(""); a.Is6() && !a.IsLoopback() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// perAddrLimited reports whether the per-address limits apply to the
// client address key: not to loopback, where the clients are processes on
// the server's own host (benchmarks logging in thousands of devices,
// tools); the per-stream, per-account and per-code limits still do.
func perAddrLimited(key string) bool {
	a, err := netip.ParseAddr(key)
	return err != nil || !a.IsLoopback()
}
