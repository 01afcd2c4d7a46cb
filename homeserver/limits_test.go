package homeserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// raw writes bytes as they are and returns the next answer or push.
func (c *client) raw(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func frameOf(t *testing.T, f *wire.ClientFrame) []byte {
	b, err := wire.AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, Config{MaxMessageBytes: 1000, MaxFrame: 8000})
	c := h.connect()
	// Before authentication.
	c.fails(ping(), wire.Code_CODE_UNAUTHENTICATED)
	c.fails(appMsg(conv, "m", 0, "x"), wire.Code_CODE_UNAUTHENTICATED)
	c.fails(&wire.ClientFrame{}, wire.Code_CODE_BAD_REQUEST) // empty body
	// Garbage inside a well-delimited frame: an error push, the stream lives on.
	c.raw(append(binary.AppendUvarint(nil, 3), 0xff, 0xff, 0xff))
	if e := c.push().GetError(); e.GetCode() != wire.Code_CODE_BAD_REQUEST {
		t.Fatalf("garbage frame: %v", e)
	}
	// Request id 0.
	c.raw(frameOf(t, &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}))
	if e := c.push().GetError(); e.GetCode() != wire.Code_CODE_BAD_REQUEST {
		t.Fatalf("id 0: %v", e)
	}
	c.fails(&wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: "x.y.z"}}}, wire.Code_CODE_UNAUTHENTICATED)

	alice, _ := h.firstDevice("alice")
	alice.fails(&wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: alice.access}}}, wire.Code_CODE_BAD_REQUEST) // already authenticated
	createConv(alice, conv)
	alice.fails(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: conv, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}}, wire.Code_CODE_CONFLICT)
	for _, id := range []string{"", "x", "x@other.example", "bad id@" + testDomain, "@" + testDomain} {
		alice.fails(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
			ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}}, wire.Code_CODE_BAD_REQUEST)
	}
	alice.fails(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: "k@" + testDomain}}}, wire.Code_CODE_BAD_REQUEST) // no kind
	alice.fails(appMsg(conv, "big", 0, string(bytes.Repeat([]byte{1}, 1001))), wire.Code_CODE_TOO_LARGE)
	alice.fails(appMsg(conv, "", 0, "x"), wire.Code_CODE_BAD_REQUEST)
	alice.fails(appMsg(conv, "e", 0, ""), wire.Code_CODE_BAD_REQUEST)
	alice.fails(appMsg("none@"+testDomain, "n", 0, "x"), wire.Code_CODE_NOT_FOUND)
	alice.fails(sendFrame(conv, "w", wire.MessageKind_MESSAGE_KIND_WELCOME, 0, "x"), wire.Code_CODE_BAD_REQUEST)
	bad := appMsg(conv, "a", 0, "x")
	bad.GetSend().AddDevices = []string{"bob@" + testDomain + "/X"}
	alice.fails(bad, wire.Code_CODE_BAD_REQUEST) // roster change outside a commit
	alice.fails(commit(conv, "c", 0, []string{"not an address"}, nil), wire.Code_CODE_BAD_REQUEST)
	alice.fails(commit(conv, "c", 0, []string{"bob@" + testDomain + "/NOSUCHDEVICE"}, nil), wire.Code_CODE_NOT_FOUND)
	alice.fails(commit(conv, "c", 0, []string{"bob@remote.example/D1"}, nil), wire.Code_CODE_UNAVAILABLE)
	alice.fails(commit(conv, "c", 0, nil, []string{alice.addr()}), wire.Code_CODE_BAD_REQUEST) // own removal
	alice.fails(commit(conv, "c", 0, []string{alice.addr()}, nil), wire.Code_CODE_CONFLICT)    // already a member
	alice.fails(&wire.ClientFrame{Body: &wire.ClientFrame_SetPresence{SetPresence: &wire.SetPresence{}}}, wire.Code_CODE_BAD_REQUEST)
	alice.must(ping()) // none of that hurt the session

	// A frame over the limit: TOO_LARGE, then the stream is closed.
	big := frameOf(t, appMsg(conv, "huge", 0, string(bytes.Repeat([]byte{1}, 9000))))
	go alice.conn.Write(big)
	if e := alice.push().GetError(); e.GetCode() != wire.Code_CODE_TOO_LARGE {
		t.Fatalf("oversized frame: %v", e)
	}
	select {
	case <-alice.done:
	case <-time.After(wait):
		t.Fatal("stream not closed after an oversized frame")
	}
}

func TestMemberLimit(t *testing.T) {
	h := newHarness(t, Config{MaxMembers: 2})
	alice, bob := twoUsers(t, h)
	_ = bob
	carol, _ := h.firstDevice("carol")
	alice.fails(commit(conv, "c3", 1, []string{carol.addr()}, nil), wire.Code_CODE_LIMIT)
}

func TestSendRateLimit(t *testing.T) {
	h := newHarness(t, Config{RateLimit: RateLimit{PerSecond: 1, Burst: 3}})
	alice, _ := twoUsers(t, h) // the commit took one token
	alice.must(appMsg(conv, "1", 1, "x"))
	alice.must(appMsg(conv, "2", 1, "x"))
	e := alice.fails(appMsg(conv, "3", 1, "x"), wire.Code_CODE_RATE_LIMITED)
	if e.RetryAfterMs == 0 || !e.Retryable {
		t.Fatalf("rate limit answer %v", e)
	}
	// A retry of an accepted message is not limited (it is answered from the dedup record).
	if ok := alice.must(appMsg(conv, "2", 1, "x")).GetSendOk(); !ok.Duplicate {
		t.Fatal(ok)
	}
	h.clock.Add(time.Second)
	alice.must(appMsg(conv, "3", 1, "x"))
}

func TestTypingAndPresence(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_Typing{Typing: &wire.Typing{ConversationId: conv, Typing: true}}})
	for {
		f := bob.push()
		if ty := f.GetTyping(); ty != nil {
			if ty.User != "alice@"+testDomain || !ty.Typing || ty.ConversationId != conv {
				t.Fatalf("typing %v", ty)
			}
			break
		}
	}
	alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_SetPresence{SetPresence: &wire.SetPresence{State: wire.PresenceState_PRESENCE_STATE_AWAY}}})
	for {
		if p := bob.push().GetPresence(); p != nil && p.User == "alice@"+testDomain && p.State == wire.PresenceState_PRESENCE_STATE_AWAY {
			break
		}
	}
	if st, _ := h.s.presence.Get("alice@" + testDomain); st != wire.PresenceState_PRESENCE_STATE_AWAY {
		t.Fatalf("presence %v", st)
	}
	// Alice leaves: bob hears she is offline.
	alice.conn.Close()
	for {
		if p := bob.push().GetPresence(); p != nil && p.User == "alice@"+testDomain && p.State == wire.PresenceState_PRESENCE_STATE_OFFLINE {
			break
		}
	}
	// Alice comes back: she is told bob is online (her contacts' list);
	// bob hears she is.
	a2 := h.connect()
	a2.hello(alice.access)
	for bobOnline := presenceOf("bob@"+testDomain, wire.PresenceState_PRESENCE_STATE_ONLINE); !bobOnline(a2.push()); {
	}
	for {
		if p := bob.push().GetPresence(); p != nil && p.User == "alice@"+testDomain && p.State == wire.PresenceState_PRESENCE_STATE_ONLINE {
			break
		}
	}
	eve, _ := h.firstDevice("eve")
	eve.fails(&wire.ClientFrame{Body: &wire.ClientFrame_Typing{Typing: &wire.Typing{ConversationId: conv, Typing: true}}}, wire.Code_CODE_NOT_MEMBER)
}

func TestCloseEndsSessions(t *testing.T) {
	h := newHarness(t, Config{})
	alice, _ := h.firstDevice("alice")
	anon := h.connect() // not authenticated: closed as well
	anon.fails(ping(), wire.Code_CODE_UNAUTHENTICATED)
	h.s.Close()
	alice.closed(wire.Code_CODE_UNAVAILABLE)
	anon.closed(wire.Code_CODE_UNAVAILABLE)
	h.connect().closed(wire.Code_CODE_UNAVAILABLE) // a stream after Close
	st, err := h.s.Status(context.Background())
	if err != nil || st.OnlineSessions != 0 {
		t.Fatalf("status after close %v %v", st, err)
	}
}

func TestAdminOps(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	if _, err := h.s.UserAdd(ctx, "root", []byte("long enough"), true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pw string
		code     wire.Code
	}{
		{"root", "long enough", wire.Code_CODE_CONFLICT},
		{"Root", "long enough", wire.Code_CODE_BAD_REQUEST},
		{"a b", "long enough", wire.Code_CODE_BAD_REQUEST},
		{"", "long enough", wire.Code_CODE_BAD_REQUEST},
		{"-x", "long enough", wire.Code_CODE_BAD_REQUEST},
		{"ok", "short", wire.Code_CODE_BAD_REQUEST},
	} {
		if _, err := h.s.UserAdd(ctx, tc.name, []byte(tc.pw), false); wire.KindOf(err) != tc.code {
			t.Errorf("UserAdd(%q, %q): %v, want %v", tc.name, tc.pw, err, tc.code)
		}
	}
	users, err := h.s.UserList(ctx)
	if err != nil || len(users) != 1 || !users[0].Admin || users[0].Address != "root@"+testDomain {
		t.Fatalf("users %v %v", users, err)
	}
	if err := h.s.UserPasswd(ctx, "root", []byte("another password")); err != nil {
		t.Fatal(err)
	}
	c := h.connect()
	c.fails(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: "root", Password: "long enough"}}}, wire.Code_CODE_BAD_CREDENTIALS)
	c.login("root", "another password", nil)
	for _, err := range []error{
		h.s.UserSetDisabled(ctx, "nobody", true), h.s.UserDelete(ctx, "nobody"), h.s.UserPasswd(ctx, "nobody", []byte("12345678")),
		h.s.DeviceRevoke(ctx, "root", "NOSUCH"),
	} {
		if wire.KindOf(err) != wire.Code_CODE_NOT_FOUND {
			t.Errorf("got %v, want NOT_FOUND", err)
		}
	}
	st, err := h.s.Status(ctx)
	if err != nil || st.Users != 1 || st.OnlineSessions != 1 || st.Domain != testDomain {
		t.Fatalf("status %v %v", st, err)
	}
	devs, err := h.s.DeviceList(ctx, "root")
	if err != nil || len(devs) != 1 || !devs[0].Online || devs[0].Status != "active" {
		t.Fatalf("devices %v %v", devs, err)
	}
}
