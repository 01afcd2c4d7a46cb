package homeserver

import (
	"context"
	"testing"

	"hearth/homeserver/wire"
)

// TestRESTTokensAndConversations: the REST refresh rotates like the
// stream's Refresh and is limited per non-loopback address; the
// conversation list is the user's, for active devices only.
func TestRESTTokensAndConversations(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	c, _ := h.firstDevice("carol")

	ok, err := h.s.RefreshTokens(ctx, "127.0.0.1:4000", c.refresh)
	if err != nil || ok.GetAccessToken() == "" || ok.GetRefreshToken() == c.refresh {
		t.Fatalf("refresh: %v, %v", ok, err)
	}
	cs, err := h.s.Conversations(ctx, ok.GetAccessToken())
	if err != nil || len(cs) != 0 {
		t.Fatalf("conversations of a new user: %v, %v", cs, err)
	}
	if _, err := h.s.Conversations(ctx, "forged"); !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
		t.Errorf("conversations with a forged token: %v", err)
	}
	// A remote address gets a burst of attempts, then waits.
	for i := range refreshPerAddrBurst {
		if _, err := h.s.RefreshTokens(ctx, "192.0.2.7:5000", "bogus"); !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := h.s.RefreshTokens(ctx, "192.0.2.7:5001", ok.GetRefreshToken()); !wire.Is(err, wire.Code_CODE_RATE_LIMITED) {
		t.Fatalf("past the burst: %v", err)
	}
	// Refused by the limit, the token was not spent: it works from elsewhere.
	if _, err := h.s.RefreshTokens(ctx, "198.51.100.1:5000", ok.GetRefreshToken()); err != nil {
		t.Fatalf("refresh from another address: %v", err)
	}
}
