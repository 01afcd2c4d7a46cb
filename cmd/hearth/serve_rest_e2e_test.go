package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"hearth/homeserver/wire"
)

// requester sends requests on a logged-in control stream and returns the
// matching answers, skipping pushes.
type requester struct {
	t  *testing.T
	fw *wire.FrameWriter
	fr *wire.FrameReader
	id uint64
}

func (r *requester) do(body *wire.ClientFrame) *wire.ServerFrame {
	r.t.Helper()
	r.id++
	body.Id = r.id + 100
	if err := r.fw.WriteMessage(body); err != nil {
		r.t.Fatal(err)
	}
	for {
		var f wire.ServerFrame
		if err := r.fr.ReadMessage(&f); err != nil {
			r.t.Fatal(err)
		}
		if f.GetId() == body.Id {
			if f.GetError() != nil {
				r.t.Fatalf("request %v: %v", body, f.GetError())
			}
			return &f
		}
	}
}

// TestServeRESTHistory reads a conversation's history over HTTPS with the
// access token of a WebTransport login, against the real server.
func TestServeRESTHistory(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	s := startServe(t, dir, nil, "--dir", dir)
	mustHearth(t, "alice password\n", "admin", "--dir", dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, "bob password\n", "admin", "--dir", dir, "user", "add", "bob", "--password-stdin")

	login := func(user, pw string) (io.Closer, *requester, *wire.LoginOK) {
		c, fr, f := s.session(t, user, pw, false)
		if f.GetLoginOk() == nil {
			t.Fatalf("login %s: %v", user, f)
		}
		return c, &requester{t: t, fw: wire.NewFrameWriter(c, 0), fr: fr}, f.GetLoginOk()
	}
	ac, alice, _ := login("alice", "alice password")
	defer ac.Close()
	bc, _, bob := login("bob", "bob password")
	defer bc.Close()

	// alice creates a group, adds bob's device by commit, then writes to it.
	const conv = "room1@localhost"
	alice.do(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: conv, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}})
	alice.do(&wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{
		ConversationId: conv, MessageId: "c1", Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 0, Payload: []byte{7},
		AddDevices: []string{"bob@localhost/" + bob.GetDeviceId()}, Welcome: []byte{8}}}})
	sent := alice.do(&wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{
		ConversationId: conv, MessageId: "m1", Kind: wire.MessageKind_MESSAGE_KIND_APPLICATION, Epoch: 1, Payload: []byte{1, 2, 3}}}})

	get := func(token, query string) (int, []byte) {
		req, _ := http.NewRequest("GET", "https://"+s.addr+"/hearth/v1/messages?"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rsp, body := s.do(t, req)
		return rsp.StatusCode, body
	}
	q := "conversation=" + url.QueryEscape(conv)
	code, body := get(bob.GetAccessToken(), q)
	var msgs []map[string]any
	if err := json.Unmarshal(body, &msgs); code != 200 || err != nil {
		t.Fatalf("history: %d %s", code, body)
	}
	var app map[string]any
	for _, m := range msgs {
		if m["kind"] == "application" {
			app = m
		}
	}
	if app == nil || app["payload"] != "AQID" || app["message_id"] != "m1" || app["sender"] == "" ||
		app["conversation_seq"] != float64(sent.GetSendOk().GetConversationSeq()) {
		t.Errorf("bob's history lacks alice's message: %s", body)
	}
	for _, tc := range []struct {
		token, query string
		status       int
		code         string
	}{
		{"", q, 401, "CODE_UNAUTHENTICATED"},
		{"not-a-token", q, 401, "CODE_UNAUTHENTICATED"},
		{bob.GetAccessToken(), "limit=5", 400, "CODE_BAD_REQUEST"},
	} {
		status, body := get(tc.token, tc.query)
		var eb struct{ Code, Message string }
		json.Unmarshal(body, &eb)
		if status != tc.status || eb.Code != tc.code || eb.Message == "" {
			t.Errorf("token %q query %q: %d %s, want %d %s", tc.token, tc.query, status, body, tc.status, tc.code)
		}
	}
}
