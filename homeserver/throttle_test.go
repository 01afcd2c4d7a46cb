package homeserver

import (
	"fmt"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

const (
	attackerAddr = "198.51.100.7:40000"
	ownerAddr    = "203.0.113.9:50000"
)

// rateLimited checks a CODE_RATE_LIMITED answer that says when to retry.
func rateLimited(t *testing.T, c *client, f *wire.ClientFrame) {
	t.Helper()
	if e := c.fails(f, wire.Code_CODE_RATE_LIMITED); e.RetryAfterMs == 0 {
		t.Fatalf("rate limited without retry_after_ms: %v", e)
	}
}

// TestRegisterLimitsPerAddress: bad codes from one address slow that
// address down and never block another address's valid invite; the
// guesser recovers with time.
func TestRegisterLimitsPerAddress(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 30 {
		f := registerFrame(fmt.Sprintf("AAAA-AAAA-AAAA-AA%02d", i), "eve", "password-eve")
		if i < registerPerAddrBurst {
			h.connectFrom(attackerAddr).fails(f, wire.Code_CODE_FORBIDDEN)
		} else {
			rateLimited(t, h.connectFrom(attackerAddr), f)
		}
	}
	inv := h.invite(1, time.Hour)
	h.connectFrom(ownerAddr).must(registerFrame(inv.Code, "jo", "password-jo"))

	rateLimited(t, h.connectFrom(attackerAddr), registerFrame("AAAA-AAAA-AAAA-AAZZ", "eve", "password-eve"))
	h.clock.Add(time.Duration(float64(time.Second) / registerPerAddrPerSec))
	inv = h.invite(1, time.Hour)
	h.connectFrom(attackerAddr).must(registerFrame(inv.Code, "eve", "password-eve"))
}

// TestRegisterLimitsPerCode: one code tried from many addresses is
// limited too.
func TestRegisterLimitsPerCode(t *testing.T) {
	h := newHarness(t, Config{})
	code := "BBBB-BBBB-BBBB-BBBB"
	for i := range registerPerCodeBurst {
		h.connectFrom(fmt.Sprintf("192.0.2.%d:1000", i)).fails(registerFrame(code, "eve", "password-eve"), wire.Code_CODE_FORBIDDEN)
	}
	rateLimited(t, h.connectFrom("192.0.2.200:1000"), registerFrame(code, "eve", "password-eve"))
	h.connectFrom("192.0.2.200:1000").fails(registerFrame("BBBB-BBBB-BBBB-BBBC", "eve", "password-eve"), wire.Code_CODE_FORBIDDEN)
}

func TestClientAddr(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"198.51.100.7:40000", "198.51.100.7"},
		{"198.51.100.7", "198.51.100.7"},
		{"[::ffff:198.51.100.7]:1", "198.51.100.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"pipe", "pipe"},
	} {
		if got := clientAddr(c.remote); got != c.want {
			t.Errorf("clientAddr(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}
