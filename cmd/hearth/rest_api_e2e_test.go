package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"hearth/homeserver/transport"
)

// TestRESTIntegration drives the REST endpoints a bot uses, against the
// real server, with the token `chat token` prints: conversations list,
// history pages (ciphertext), health, and token refresh with reuse
// detection.
func TestRESTIntegration(t *testing.T) {
	skipShort(t)
	parallelE2E(t)
	n, a1, b1 := newMessagingNet(t)
	a1.must(t, "", "send", bobAddr, "hello over REST")
	expectRecv(t, b1, aliceAddr+":hello over REST")
	tok := strings.TrimSpace(b1.must(t, "", "token"))
	get := func(path, token string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", "https://"+n.srv.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return n.srv.do(t, req)
	}

	if rsp, _ := get(transport.PathConversations, ""); rsp.StatusCode != http.StatusUnauthorized {
		t.Errorf("conversations without a token: %s", rsp.Status)
	}
	rsp, body := get(transport.PathConversations, tok)
	var convs []transport.Conversation
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(body, &convs) != nil || len(convs) != 1 {
		t.Fatalf("conversations: %s %s", rsp.Status, body)
	}
	c := convs[0]
	if c.Kind != "direct" || !strings.HasSuffix(c.ID, "@localhost") || c.LastSeq == 0 || len(c.Members) != 2 || !strings.HasPrefix(c.Creator, "alice@localhost") {
		t.Errorf("conversation: %+v", c)
	}
	rsp, body = get(transport.PathMessages+"?conversation="+url.QueryEscape(c.ID)+"&limit=10", tok)
	var msgs []transport.Message
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(body, &msgs) != nil || len(msgs) == 0 {
		t.Fatalf("history: %s %s", rsp.Status, body)
	}
	for _, m := range msgs {
		if bytes.Contains(m.Payload, []byte("hello over REST")) {
			t.Errorf("the server holds plaintext: %+v", m)
		}
	}
	if rsp, body := get(transport.PathHealth, ""); rsp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("health: %s %s", rsp.Status, body)
	}

	// Token refresh, with a device of its own (the profiles keep theirs).
	ok, e := n.srv.login(t, "alice", strings.TrimSpace(password("alice")), false)
	if ok == nil {
		t.Fatalf("login: %v", e)
	}
	refresh := func(body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", "https://"+n.srv.addr+transport.PathTokenRefresh, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		return n.srv.do(t, req)
	}
	for _, bad := range []string{"", `{"refresh_token":""}`, `{"token":"x"}`, "not json"} {
		if rsp, body := refresh(bad); rsp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "CODE_BAD_REQUEST") {
			t.Errorf("refresh with %q: %s %s", bad, rsp.Status, body)
		}
	}
	if rsp, _ := refresh(`{"refresh_token":"forged"}`); rsp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged refresh token: %s", rsp.Status)
	}
	rb, _ := json.Marshal(map[string]string{"refresh_token": ok.GetRefreshToken()})
	rsp, body = refresh(string(rb))
	var pair transport.TokenPair
	if rsp.StatusCode != http.StatusOK || json.Unmarshal(body, &pair) != nil || pair.AccessToken == "" || pair.RefreshToken == "" || pair.RefreshToken == ok.GetRefreshToken() || pair.AccessExpiresMs == 0 {
		t.Fatalf("refresh: %s %s", rsp.Status, body)
	}
	// Pending device (alice's second): its token is valid but it sees nothing yet.
	if rsp, body := get(transport.PathConversations, pair.AccessToken); rsp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "CODE_PENDING_APPROVAL") {
		t.Errorf("conversations of a pending device: %s %s", rsp.Status, body)
	}
	// The old refresh token presented again: the chain is revoked.
	if rsp, _ := refresh(string(rb)); rsp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reused refresh token: %s", rsp.Status)
	}
	rb2, _ := json.Marshal(map[string]string{"refresh_token": pair.RefreshToken})
	if rsp, _ := refresh(string(rb2)); rsp.StatusCode != http.StatusUnauthorized {
		t.Errorf("refresh token of a revoked chain: %s", rsp.Status)
	}
}
