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

func loginFrame(user, pw string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: user, Password: pw, DeviceName: "test"}}}
}

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

// TestLoginOwnerNotLockedOut: a guesser at one address exhausts its
// attempts at an account; the owner at another address still logs in,
// and the guesser's answers never tell a known name from an unknown one.
func TestLoginOwnerNotLockedOut(t *testing.T) {
	h := newHarness(t, Config{})
	h.addUser("alice")
	for range loginPerUserBurst {
		h.connectFrom(attackerAddr).fails(loginFrame("alice", "guess"), wire.Code_CODE_BAD_CREDENTIALS)
		h.connectFrom(attackerAddr).fails(loginFrame("nobody", "guess"), wire.Code_CODE_BAD_CREDENTIALS)
	}
	known := h.connectFrom(attackerAddr).fails(loginFrame("alice", "guess"), wire.Code_CODE_RATE_LIMITED)
	unknown := h.connectFrom(attackerAddr).fails(loginFrame("nobody", "guess"), wire.Code_CODE_RATE_LIMITED)
	if known.Message != unknown.Message {
		t.Fatalf("the limiter tells known from unknown names: %q vs %q", known.Message, unknown.Message)
	}
	h.connectFrom(ownerAddr).login("alice", "password-alice", nil)

	h.clock.Add(time.Duration(float64(time.Second) / loginPerUserPerSec))
	h.connectFrom(attackerAddr).fails(loginFrame("alice", "guess"), wire.Code_CODE_BAD_CREDENTIALS)
}

// TestLoginLimitsPerAddress: guessing across many accounts from one
// address is throttled; other addresses are not, and the limit recovers
// with time.
func TestLoginLimitsPerAddress(t *testing.T) {
	h := newHarness(t, Config{})
	h.addUser("bob")
	for i := range loginPerAddrBurst + 5 {
		f := loginFrame(fmt.Sprintf("user%d", i), "guess")
		if i < loginPerAddrBurst {
			h.connectFrom(attackerAddr).fails(f, wire.Code_CODE_BAD_CREDENTIALS)
		} else {
			rateLimited(t, h.connectFrom(attackerAddr), f)
		}
	}
	// One IPv6 host holds its /64: another address in it is the same client.
	v6 := "[2001:db8:1:2::1]:443"
	for i := range loginPerAddrBurst {
		h.connectFrom(v6).fails(loginFrame(fmt.Sprintf("user%d", i), "guess"), wire.Code_CODE_BAD_CREDENTIALS)
	}
	rateLimited(t, h.connectFrom("[2001:db8:1:2::ffff]:443"), loginFrame("dave", "guess"))

	h.connectFrom(ownerAddr).login("bob", "password-bob", nil)
	rateLimited(t, h.connectFrom(attackerAddr), loginFrame("bob", "password-bob"))
	h.clock.Add(time.Duration(float64(time.Second) / loginPerAddrPerSec))
	h.connectFrom(attackerAddr).login("bob", "password-bob", nil)
}

func TestClientAddr(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"198.51.100.7:40000", "198.51.100.7"},
		{"198.51.100.7", "198.51.100.7"},
		{"[::ffff:198.51.100.7]:1", "198.51.100.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"[::1]:443", "::1"},
		{"pipe", "pipe"},
	} {
		if got := clientAddr(c.remote); got != c.want {
			t.Errorf("clientAddr(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}

// TestLoopbackNotLimitedPerAddress: processes on the server's own host
// (benchmarks) log in many accounts; the account limit still holds.
func TestLoopbackNotLimitedPerAddress(t *testing.T) {
	h := newHarness(t, Config{})
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000"} {
		for i := range loginPerAddrBurst + 5 {
			h.connectFrom(remote).fails(loginFrame(fmt.Sprintf("user%d", i), "guess"), wire.Code_CODE_BAD_CREDENTIALS)
		}
		for range loginPerUserBurst {
			h.connectFrom(remote).fails(loginFrame("bob", "guess"), wire.Code_CODE_BAD_CREDENTIALS)
		}
		rateLimited(t, h.connectFrom(remote), loginFrame("bob", "guess"))
	}
}
