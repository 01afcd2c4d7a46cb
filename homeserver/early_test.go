package homeserver

import (
	"context"
	"net"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// earlyPipe is a pipe whose handshake completes when the test says so,
// like a native QUIC stream carrying 0-RTT data.
type earlyPipe struct {
	net.Conn
	done chan struct{}
}

func (p earlyPipe) HandshakeComplete() <-chan struct{} { return p.done }

// TestEarlyDataGate: before the handshake completed the session answers
// replay-safe requests (Hello, Sync, a read) and holds the first request
// that is not (CreateConversation) with everything behind it, until the
// handshake completes; a session whose handshake never completes never
// acts on it.
func TestEarlyDataGate(t *testing.T) {
	h := newHarness(t, Config{})
	alice, _ := h.firstDevice("alice")
	for _, complete := range []bool{true, false} {
		srv, cli := net.Pipe()
		ep := earlyPipe{Conn: srv, done: make(chan struct{})}
		go h.s.ServeStream(context.Background(), ep, "127.0.0.1:1")
		c := &client{t: t, conn: cli, fw: wire.NewFrameWriter(cli, 0), waits: map[uint64]chan *wire.ServerFrame{},
			pushes: make(chan *wire.ServerFrame, 100), done: make(chan struct{})}
		go c.readLoop()
		if r := c.hello(alice.access); r.GetHelloOk() == nil {
			t.Fatalf("hello in early data: %v", r)
		}
		c.must(syncFrame(0))
		c.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}})
		id := "early" + map[bool]string{true: "1", false: "2"}[complete] + "@" + testDomain
		held := c.start(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
			ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}})
		behind := make(chan *wire.ServerFrame, 1)
		c.mu.Lock()
		c.waits[999] = behind
		c.mu.Unlock()
		p := ping()
		p.Id = 999
		go c.fw.WriteMessage(p) // a pipe write waits for the reader, which is held; fails once closed
		select {
		case r := <-held:
			t.Fatalf("CreateConversation answered before the handshake completed: %v", r)
		case r := <-behind:
			t.Fatalf("a Ping behind a held request was answered first: %v", r)
		case <-time.After(200 * time.Millisecond):
		}
		if complete {
			close(ep.done)
			if r := c.await(held); r.GetConversation() == nil {
				t.Fatalf("after the handshake: %v", r)
			}
			c.await(behind)
		} else {
			cli.Close()
			time.Sleep(100 * time.Millisecond)
			if r := alice.call(&wire.ClientFrame{Body: &wire.ClientFrame_GetConversation{GetConversation: &wire.GetConversation{ConversationId: id}}}); r.GetError() == nil {
				t.Fatalf("the held CreateConversation ran without a handshake: %v", r)
			}
		}
	}
	if st := h.s.Stats(); st.EarlyHeld != 2 || st.EarlyServed < 6 {
		t.Errorf("early served %d, held %d; want ≥ 6 and 2", st.EarlyServed, st.EarlyHeld)
	}
}
