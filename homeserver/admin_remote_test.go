package homeserver

import (
	"context"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// TestAuthorizeAdmin: only an admin-role user's active device passes; the
// role is read at each check; refusals carry the actor (for the audit log)
// until the device's budget is spent, then none (not audited).
func TestAuthorizeAdmin(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	c, _ := h.firstDevice("carol")
	actor := "carol@" + testDomain + "/" + c.device

	if a, err := h.s.AuthorizeAdmin(ctx, "not-a-token"); a != "" || !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
		t.Fatalf("bad token: %q, %v", a, err)
	}
	if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != actor || !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("non-admin: %q, %v", a, err)
	}
	if err := h.s.UserSetRole(ctx, "carol", true); err != nil {
		t.Fatal(err)
	}
	if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != actor || err != nil {
		t.Fatalf("admin: %q, %v", a, err)
	}
	if err := h.s.UserSetRole(ctx, "carol", false); err != nil {
		t.Fatal(err)
	}
	if err := h.s.UserSetRole(ctx, "nobody", true); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Errorf("role of no user: %v", err)
	}
	// Refusals: the first of the burst was above; the rest, then no actor.
	for i := 1; i < refusedBurst; i++ {
		if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != actor || !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
			t.Fatalf("refusal %d: %q, %v", i, a, err)
		}
	}
	if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != "" || !wire.Is(err, wire.Code_CODE_RATE_LIMITED) {
		t.Fatalf("past the budget: %q, %v", a, err)
	}
	h.clock.Add(time.Minute)
	if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != actor || !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("a minute later: %q, %v", a, err)
	}
	// Disabled: the token itself no longer works.
	if err := h.s.UserSetRole(ctx, "carol", true); err != nil {
		t.Fatal(err)
	}
	if err := h.s.UserSetDisabled(ctx, "carol", true); err != nil {
		t.Fatal(err)
	}
	if a, err := h.s.AuthorizeAdmin(ctx, c.access); a != "" || !wire.Is(err, wire.Code_CODE_USER_DISABLED) {
		t.Fatalf("disabled admin: %q, %v", a, err)
	}
}
