package homeserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hearth/homeserver/certs"
	"hearth/homeserver/transport"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestZeroRTTReplayDeliversOnce: a returning native QUIC client sends
// Hello, a Send and a Typing signal in 0-RTT data. An attacker who
// recorded those datagrams replays them later from another address: the
// server accepts the replayed 0-RTT data (a new connection whose handshake
// never completes) and acts on the replay-safe requests, but the Send is
// answered from its dedup record (nothing stored, nothing delivered
// again) and the Typing signal, not replay-safe, is held until a handshake
// completion that never comes (bob sees it once).
func TestZeroRTTReplayDeliversOnce(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1) // the Welcome

	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.New(transport.Config{}, transport.Deps{Streams: h.s, TLS: m.TLSConfig(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeQUIC(pc) })
	t.Cleanup(func() { srv.Close(); wg.Wait(); pc.Close() })
	relay := newRecorder(t, pc.LocalAddr().(*net.UDPAddr))

	cache := tls.NewLRUClientSessionCache(2)
	tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		NextProtos: []string{transport.NextProtoHearth}, ClientSessionCache: cache}
	hello := &wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: alice.access, Passive: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A first connection brings the session ticket.
	qc, err := quic.DialAddrEarly(ctx, relay.addr, tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	answers := nativeRoundTrip(t, qc, hello)
	if answers[0].GetHelloOk() == nil {
		t.Fatalf("hello: %v", answers[0])
	}
	waitFor(t, 5*time.Second, func() bool { _, ok := cache.Get("127.0.0.1"); return ok })
	qc.CloseWithError(0, "")

	// The returning connection: everything in the first flight, as 0-RTT.
	relay.recording(true)
	qc, err = quic.DialAddrEarly(ctx, relay.addr, tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-qc.HandshakeComplete():
		t.Fatal("the returning dial waited for the handshake: no 0-RTT")
	default:
	}
	typing := &wire.ClientFrame{Id: 3, Body: &wire.ClientFrame_Typing{Typing: &wire.Typing{ConversationId: conv, Typing: true}}}
	answers = nativeRoundTrip(t, qc, hello, withID(appMsg(conv, "m-0rtt", 1, "sent in 0-RTT"), 2), typing)
	if !qc.ConnectionState().Used0RTT {
		t.Fatal("the server did not accept the 0-RTT data")
	}
	byID := map[uint64]*wire.ServerFrame{}
	for _, a := range answers {
		byID[a.GetId()] = a
	}
	if byID[1].GetHelloOk() == nil || byID[2].GetSendOk() == nil || byID[3].GetOk() == nil {
		t.Fatalf("answers %v", answers)
	}
	qc.CloseWithError(0, "")
	relay.recording(false)
	if ds, n := pushesWithin(bob, 500*time.Millisecond); len(ds) != 1 || string(ds[0].Payload) != "sent in 0-RTT" || n != 1 {
		t.Fatalf("bob got deliveries %v and %d typing pushes; want the message and 1", ds, n)
	}
	before := h.s.Stats()
	head := mailboxHead(t, h, bob)

	// The replay, from another address, until the server acted on it:
	// quic-go answers packets for a closed connection's IDs with its
	// CONNECTION_CLOSE for 3 PTOs after the close, and under a loaded
	// machine's RTT samples (the relay) that has taken more than 8 s.
	flight := relay.recorded()
	if len(flight) == 0 {
		t.Fatal("nothing recorded")
	}
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	deadline := time.Now().Add(30 * time.Second)
	for h.s.Stats().EarlyServed < before.EarlyServed+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the replay never reached the sessions (early served %d → %d)", before.EarlyServed, h.s.Stats().EarlyServed)
		}
		for _, d := range flight {
			attacker.WriteToUDP(d, pc.LocalAddr().(*net.UDPAddr))
		}
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, func() bool { return h.s.Stats().EarlyHeld > before.EarlyHeld }) // the Typing
	after := h.s.Stats()
	if after.Accepted != before.Accepted {
		t.Errorf("the replayed Send was accepted again: %d → %d", before.Accepted, after.Accepted)
	}
	if got := mailboxHead(t, h, bob); got != head {
		t.Errorf("bob's mailbox head %d → %d after the replay", head, got)
	}
	if ds, n := pushesWithin(bob, 500*time.Millisecond); len(ds) != 0 || n != 0 {
		t.Errorf("after the replay bob got deliveries %v and %d typing pushes; want none", ds, n)
	}
}

// nativeRoundTrip opens the control stream, writes frames back to back
// and reads one answer per frame (in the order they come).
func nativeRoundTrip(t *testing.T, qc *quic.Conn, frames ...*wire.ClientFrame) []*wire.ServerFrame {
	t.Helper()
	str, err := qc.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	fw, fr := wire.NewFrameWriter(str, 0), wire.NewFrameReader(str, 0)
	for _, f := range frames {
		if err := fw.WriteMessage(f); err != nil {
			t.Fatal(err)
		}
	}
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []*wire.ServerFrame
	for len(out) < len(frames) {
		f := &wire.ServerFrame{}
		if err := fr.ReadMessage(f); err != nil {
			t.Fatalf("after %d answers: %v", len(out), err)
		}
		if f.GetId() != 0 {
			out = append(out, f)
		}
	}
	return out
}

func withID(f *wire.ClientFrame, id uint64) *wire.ClientFrame { f.Id = id; return f }

// pushesWithin collects the deliveries and counts the typing pushes c
// receives within d (typing pushes are ephemeral, queued apart from the
// answers).
func pushesWithin(c *client, d time.Duration) (ds []*wire.Delivery, typing int) {
	deadline := time.After(d)
	for {
		select {
		case f := <-c.pushes:
			if f.GetTyping() != nil {
				typing++
			}
			if dl := f.GetDelivery(); dl != nil {
				ds = append(ds, dl)
			}
		case <-deadline:
			return ds, typing
		}
	}
}

func mailboxHead(t *testing.T, h *harness, c *client) uint64 {
	t.Helper()
	var head uint64
	if err := h.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		head, _, err = tx.MailboxState(c.device)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return head
}

// recorder is a UDP relay on loopback that can record the datagrams a
// client sends (an on-path attacker's capture).
type recorder struct {
	addr string

	mu   sync.Mutex
	on   bool
	data [][]byte
}

func newRecorder(t *testing.T, server *net.UDPAddr) *recorder {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.LocalAddr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	flows := map[string]*net.UDPConn{}
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.on {
				r.data = append(r.data, append([]byte(nil), buf[:n]...))
			}
			r.mu.Unlock()
			mu.Lock()
			up := flows[from.String()]
			if up == nil {
				if up, err = net.DialUDP("udp", nil, server); err != nil {
					mu.Unlock()
					continue
				}
				flows[from.String()] = up
				wg.Go(func() {
					b := make([]byte, 2048)
					for {
						n, err := up.Read(b)
						if err != nil {
							return
						}
						ln.WriteToUDP(b[:n], from)
					}
				})
			}
			mu.Unlock()
			up.Write(buf[:n])
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, up := range flows {
			up.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return r
}

func (r *recorder) recording(on bool) {
	r.mu.Lock()
	r.on = on
	r.mu.Unlock()
}

func (r *recorder) recorded() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data
}
