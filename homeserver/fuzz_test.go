package homeserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// FuzzServeStream feeds arbitrary bytes through net.Pipe to a real server
// on a real database: no panic, no hang, the session ends when the input
// does. Seeds include an authenticated session so the fuzzer reaches the
// request handlers.
func FuzzServeStream(f *testing.F) {
	h := newHarness(f, Config{MaxFrame: 64 << 10, MaxMessageBytes: 32 << 10, MaxDevices: 1 << 30})
	h.addUser("fuzz")
	login := frameBytes(f, &wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Login{Login: &wire.Login{User: "fuzz", Password: "password-fuzz"}}})
	seeds := [][]byte{
		nil,
		{0},
		{0xff, 0xff, 0xff, 0xff, 0x0f},
		login,
		append(append([]byte(nil), login...), frameBytes(f, &wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
			ConversationId: "f@" + testDomain, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}})...),
		append(append([]byte(nil), login...), frameBytes(f, &wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_Send{Send: &wire.Send{
			ConversationId: "f@" + testDomain, MessageId: "m", Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Payload: []byte("p")}}})...),
		append(append([]byte(nil), login...), frameBytes(f, &wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{}}})...),
		frameBytes(f, &wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: "eyJ.eyJ.sig", Passive: true}}}),
		append(append([]byte(nil), login...), frameBytes(f, &wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_GetPresence{GetPresence: &wire.GetPresence{
			Users: []string{"fuzz@" + testDomain, "x@other.example", "bad"}}}})...),
		append(append([]byte(nil), login...), frameBytes(f, &wire.ClientFrame{Id: 2, Body: &wire.ClientFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{
			LastSeen: wire.LastSeenVisibility_LAST_SEEN_NOBODY}}})...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h.clock.Add(time.Minute) // refill the login limiter so seeds keep reaching the handlers
		srv, cli := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.s.ServeStream(context.Background(), srv, "fuzz")
		}()
		go io.Copy(io.Discard, cli) // a client that reads everything
		cli.SetWriteDeadline(time.Now().Add(10 * time.Second))
		cli.Write(in)
		cli.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeStream did not return after the client closed")
		}
	})
}

func frameBytes(t testing.TB, f *wire.ClientFrame) []byte {
	b, err := wire.AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseAccessToken: the token parser reads bearer text from the
// network. It must never panic, and never accept what the key did not sign.
func FuzzParseAccessToken(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := &authority{cfg: Config{Domain: testDomain, AccessTokenTTL: time.Hour}, keys: &tokenKeys{key: priv},
		now: time.Now, rand: &lockedReader{r: rand.Reader}}
	good, _, err := h.issueAccessToken("a@"+testDomain, "DEV")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(jwtHeaderB64 + ".e30." + good[len(good)-86:])
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parseAccessToken(pub, testDomain, time.Now(), tok)
		if err == nil && tok != good {
			// Only exact signed bytes verify; any accepted token must be
			// the one we issued (Ed25519 signatures are not malleable).
			if !bytes.Equal([]byte(tok), []byte(good)) {
				t.Fatalf("accepted a token we did not issue: %q -> %+v", tok, c)
			}
		}
	})
}
