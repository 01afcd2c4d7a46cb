package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/storage"
)

func registerFrame(code, user, pw string) *wire.ClientFrame {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return &wire.ClientFrame{Body: &wire.ClientFrame_Register{Register: &wire.Register{
		InviteCode: code, User: user, Password: pw, DeviceName: "phone", SignatureKey: pub}}}
}

func (h *harness) invite(uses int, ttl time.Duration) admin.InviteCreated {
	h.t.Helper()
	inv, err := h.s.InviteCreate(context.Background(), uses, ttl)
	if err != nil {
		h.t.Fatal(err)
	}
	return inv
}

// inviteState returns the listed invite with this id.
func (h *harness) inviteState(id int64) admin.InviteInfo {
	h.t.Helper()
	list, err := h.s.InviteList(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, i := range list {
		if i.ID == id {
			return i
		}
	}
	h.t.Fatalf("invite %d not listed", id)
	return admin.InviteInfo{}
}

// assertNoUser checks that a refused registration stored no account.
func (h *harness) assertNoUser(name string) {
	h.t.Helper()
	err := h.db.Read(context.Background(), func(tx *storage.Tx) error { _, err := tx.UserByName(name); return err })
	if !errors.Is(err, storage.ErrNotFound) {
		h.t.Fatalf("user %s after refused registration: %v", name, err)
	}
}

func TestRegisterWithInvite(t *testing.T) {
	h := newHarness(t, Config{})
	inv := h.invite(2, time.Hour)
	if !regexp.MustCompile(`^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$`).MatchString(inv.Code) || inv.UsesLeft != 2 || inv.State != "active" {
		t.Fatalf("created invite %+v", inv)
	}
	// Typed in lower case without dashes, the code still works.
	c := h.connect()
	ok := c.must(registerFrame(strings.ToLower(strings.ReplaceAll(inv.Code, "-", "")), "dora", "password-dora")).GetLoginOk()
	if ok == nil || !ok.FirstDevice || ok.User != "dora@"+testDomain || ok.Status != wire.DeviceStatus_DEVICE_STATUS_ACTIVE || ok.AccessToken == "" {
		t.Fatalf("register answer %v", ok)
	}
	c.must(ping()) // the stream is authenticated
	c.fails(registerFrame(inv.Code, "dora2", "password-dora"), wire.Code_CODE_BAD_REQUEST)
	// The account is an ordinary user that can log in with its password.
	h.connect().login("dora", "password-dora", nil)
	us, err := h.s.UserList(context.Background())
	if err != nil || len(us) != 1 || us[0].Admin || us[0].Devices != 2 {
		t.Fatalf("users %+v %v", us, err)
	}
	// A taken name is refused and gives the use back.
	e := h.connect().fails(registerFrame(inv.Code, "dora", "password-x1"), wire.Code_CODE_CONFLICT)
	if got := h.inviteState(inv.ID); got.UsesLeft != 1 {
		t.Fatalf("after conflict (%s): %+v, want 1 use left", e.Message, got)
	}
	h.connect().must(registerFrame(inv.Code, "erin", "password-erin"))
	if got := h.inviteState(inv.ID); got.UsesLeft != 0 || got.State != "used" {
		t.Fatalf("after second use: %+v", got)
	}
	e = h.connect().fails(registerFrame(inv.Code, "fred", "password-fred"), wire.Code_CODE_FORBIDDEN)
	if !strings.Contains(e.Message, "used up") {
		t.Fatalf("used-up message %q", e.Message)
	}
	h.assertNoUser("fred")
	// Listings never carry the code.
	list, _ := h.s.InviteList(context.Background())
	js, _ := json.Marshal(list)
	raw := strings.ReplaceAll(inv.Code, "-", "")
	if strings.Contains(string(js), raw) || strings.Contains(string(js), inv.Code) || len(list) != 1 || list[0].Prefix != raw[:4] {
		t.Fatalf("listing %s", js)
	}
}

func TestRegisterRefused(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	try := func(code, user, pw string, want wire.Code, msg string) {
		t.Helper()
		e := h.connect().fails(registerFrame(code, user, pw), want)
		if !strings.Contains(e.Message, msg) {
			t.Fatalf("register %s: message %q, want %q", user, e.Message, msg)
		}
		h.assertNoUser(user)
	}
	expiring := h.invite(1, time.Hour)
	h.clock.Add(time.Hour)
	try(expiring.Code, "gina", "password-gina", wire.Code_CODE_FORBIDDEN, "expired")
	if got := h.inviteState(expiring.ID); got.State != "expired" || got.UsesLeft != 1 {
		t.Fatalf("expired invite %+v", got)
	}

	byCode, byID := h.invite(3, time.Hour), h.invite(3, time.Hour)
	if err := h.s.InviteRevoke(ctx, strings.ToLower(byCode.Code), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.s.InviteRevoke(ctx, "", byID.ID); err != nil {
		t.Fatal(err)
	}
	var we *wire.Error
	if err := h.s.InviteRevoke(ctx, byCode.Code, 0); !errors.As(err, &we) || we.Kind != wire.Code_CODE_NOT_FOUND {
		t.Fatalf("second revoke: %v", err)
	}
	try(byCode.Code, "hana", "password-hana", wire.Code_CODE_FORBIDDEN, "revoked")
	try(byID.Code, "hana", "password-hana", wire.Code_CODE_FORBIDDEN, "revoked")

	try("AAAA-AAAA-AAAA-AAAA", "ivan", "password-ivan", wire.Code_CODE_FORBIDDEN, "unknown invite code")
	try("not a code", "ivan", "password-ivan", wire.Code_CODE_FORBIDDEN, "unknown invite code")
	try("", "ivan", "password-ivan", wire.Code_CODE_FORBIDDEN, "unknown invite code")

	good := h.invite(1, time.Hour)
	try(good.Code, "Bad Name!", "password-ivan", wire.Code_CODE_BAD_REQUEST, "invalid user name")
	try(good.Code, "ivan@other.example", "password-ivan", wire.Code_CODE_BAD_REQUEST, "invalid user name")
	try(good.Code, "ivan", "short", wire.Code_CODE_BAD_REQUEST, "password")
	if got := h.inviteState(good.ID); got.UsesLeft != 1 {
		t.Fatalf("refused registrations consumed the invite: %+v", got)
	}
	if us, err := h.s.UserList(ctx); err != nil || len(us) != 0 {
		t.Fatalf("refused registrations stored users: %+v %v", us, err)
	}
	for _, bad := range []struct {
		uses int
		ttl  time.Duration
	}{{0, time.Hour}, {maxInviteUses + 1, time.Hour}, {1, 0}, {1, maxInviteTTL + time.Hour}} {
		if _, err := h.s.InviteCreate(ctx, bad.uses, bad.ttl); !errors.As(err, &we) || we.Kind != wire.Code_CODE_BAD_REQUEST {
			t.Fatalf("InviteCreate(%d, %v): %v", bad.uses, bad.ttl, err)
		}
	}
}

// TestRegisterRateLimited: guesses are limited across streams, so fresh
// connections do not help a guesser.
func TestRegisterRateLimited(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range registerPerAddrBurst {
		if e := h.connect().fails(registerFrame("AAAA-AAAA-AAAA-AAAA", "jo", "password-jo"), wire.Code_CODE_FORBIDDEN); e == nil {
			t.Fatalf("attempt %d", i)
		}
	}
	e := h.connect().fails(registerFrame("AAAA-AAAA-AAAA-AAAA", "jo", "password-jo"), wire.Code_CODE_RATE_LIMITED)
	if e.RetryAfterMs == 0 {
		t.Fatalf("rate limit without retry_after: %v", e)
	}
	h.clock.Add(time.Minute)
	inv := h.invite(1, time.Hour)
	h.connect().must(registerFrame(inv.Code, "jo", "password-jo"))
}

// FuzzNormalizeInvite: whatever a client sends as a code, normalizing
// never panics, and what it accepts is a canonical code that formats and
// normalizes back to itself.
func FuzzNormalizeInvite(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-IJKL-MNOP", "abcdefghijklmnop", "", "AAAA AAAA AAAA AAA1", strings.Repeat("A", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, ok := normalizeInvite(s)
		if !ok {
			return
		}
		if len(raw) != inviteCodeLen || strings.Trim(raw, b32chars) != "" {
			t.Fatalf("accepted %q as %q", s, raw)
		}
		if again, ok := normalizeInvite(formatInvite(raw)); !ok || again != raw {
			t.Fatalf("format/normalize round trip of %q gave %q %v", raw, again, ok)
		}
	})
}
