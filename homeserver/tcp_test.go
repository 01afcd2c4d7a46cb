package homeserver

import (
	"context"
	"fmt"
	"net"
	"testing"

	"hearth/homeserver/wire"
)

// connectTCP serves one real TCP loopback connection.
func (h *harness) connectTCP(ln net.Listener) *client {
	h.t.Helper()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		h.t.Fatal(err)
	}
	go h.s.ServeStream(context.Background(), srv, srv.RemoteAddr().String())
	c := &client{t: h.t, conn: cli, fw: wire.NewFrameWriter(cli, 0), waits: map[uint64]chan *wire.ServerFrame{},
		pushes: make(chan *wire.ServerFrame, 100000), done: make(chan struct{})}
	go c.readLoop()
	h.t.Cleanup(func() { cli.Close() })
	return c
}

// TestOverTCP runs login, a commit, large messages and delivery over a
// real TCP loopback pair (partial reads and writes, kernel buffers).
func TestOverTCP(t *testing.T) {
	h := newHarness(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h.addUser("alice")
	h.addUser("bob")
	alice, bob := h.connectTCP(ln), h.connectTCP(ln)
	alice.login("alice", "password-alice", nil)
	bob.login("bob", "password-bob", nil)
	createConv(alice, conv)
	alice.must(commit(conv, "c0", 0, []string{bob.addr()}, nil))
	bob.must(syncFrame(0))
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i)
	}
	for i := 0; i < 20; i++ {
		f := appMsg(conv, fmt.Sprint("m", i), 1, "")
		f.GetSend().Payload = big
		alice.must(f)
	}
	ds := bob.deliveries(21)
	for i, d := range ds[1:] {
		if d.MessageId != fmt.Sprint("m", i) || len(d.Payload) != len(big) || d.Payload[12345] != big[12345] {
			t.Fatalf("delivery %d: id %s, %d bytes", i, d.MessageId, len(d.Payload))
		}
	}
}
