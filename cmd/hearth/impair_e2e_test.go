package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"hearth/cmd/hearth/internal/impair"
)

// relayPair is a UDP and a TCP relay on one loopback port in front of a
// server, so that the relay's address, like the server's, offers
// WebTransport and the WebSocket fallback.
type relayPair struct {
	udp  *impair.UDP
	tcp  *impair.TCP
	addr string
}

// newImpairedNet starts a server with users alice and bob and the relay
// in front of it (no impairment yet); relay.addr is the address to dial
// through it (n.via).
func newImpairedNet(t *testing.T) (*chatNet, *relayPair) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", "127.0.0.1:0")
	n := &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir)
	for _, u := range []string{"alice", "bob"} {
		mustHearth(t, password(u), "admin", "--dir", dir, "user", "add", u, "--password-stdin")
	}
	return n, newRelayPair(t, n.srv.addr)
}

// via is n reached through relay.
func (n *chatNet) via(relay *relayPair) *chatNet {
	return &chatNet{ca: n.ca, srv: &server{addr: relay.addr}}
}

func newRelayPair(t *testing.T, upstream string) *relayPair {
	t.Helper()
	u, l, err := impair.ListenPair("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := &relayPair{addr: l.Addr().String()}
	if p.udp, err = impair.NewUDP(u, upstream, impair.Config{}, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.udp.Close() })
	if p.tcp, err = impair.NewTCP(l, upstream, impair.Config{}, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.tcp.Close() })
	return p
}

func (p *relayPair) set(t *testing.T, udp, tcp impair.Config) {
	t.Helper()
	if err := p.udp.Set(udp); err != nil {
		t.Fatal(err)
	}
	if err := p.tcp.Set(tcp); err != nil {
		t.Fatal(err)
	}
}

// TestImpairedSendsExactlyOnceInOrder: alice's profile reaches the server
// only through the impairment relay (TLS end to end: the relay moves
// bytes, the certificate names 127.0.0.1); bob is connected directly.
// For each network, -impair.sends `chat send`s from alice (5 in the
// default run, 15 for the figures in docs/transport.md) arrive at bob
// exactly once and in order. Send durations are logged, not asserted.
//
//	go test -run TestImpairedSendsExactlyOnceInOrder -impair.sends=15 -v ./cmd/hearth
var impairSends = flag.Int("impair.sends", 5, "chat sends per network in TestImpairedSendsExactlyOnceInOrder")

// impairAll adds issue 18's other networks to TestImpairedSendsExactlyOnceInOrder
// (2 % loss at 100 ms RTT, 20 % loss at 300 ms, blackouts at 100 ms, a new
// port every 2 s at 40 ms), so that its table can be taken again with one
// command; off by default (20 % loss alone takes a minute).
var impairAll = flag.Bool("impair.all", false, "TestImpairedSendsExactlyOnceInOrder: also the issue's other networks")

func TestImpairedSendsExactlyOnceInOrder(t *testing.T) {
	parallelE2E(t)
	n, relay := newImpairedNet(t)
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), alice.loginArgs(n.via(relay))...)
	bob.must(t, password("bob"), bob.loginArgs(n)...)
	alice.must(t, "", "send", bobAddr, "hello over a clean link")
	expectRecv(t, bob, aliceAddr+":hello over a clean link")

	sends := *impairSends
	lossy := impair.Config{Loss: 0.05, Delay: 100 * time.Millisecond, Seed: 18}
	blackouts := lossy
	blackouts.Blackout = impair.Blackout{Every: 6 * time.Second, For: 2 * time.Second}
	rebinding := impair.Config{Delay: 100 * time.Millisecond, Rebind: 500 * time.Millisecond}
	type network struct {
		name     string
		udp, tcp impair.Config
		onlyTCP  bool
	}
	networks := []network{
		{"loss 5%, RTT 200 ms", lossy, lossy, false},
		{"loss 5%, RTT 200 ms, 2 s blackout every 6 s", blackouts, blackouts, false},
		{"RTT 200 ms, NAT rebinding every 500 ms", rebinding, rebinding, false},
		// UDP blocked: every datagram dropped, so each `chat send` dials
		// the WebSocket 300 ms after its QUIC attempt started (raced).
		{"UDP blocked, TCP RTT 200 ms, 5% loss as RTO, 2 s blackout every 6 s", impair.Config{Loss: 1}, blackouts, true},
	}
	if *impairAll {
		light := impair.Config{Loss: 0.02, Delay: 50 * time.Millisecond, Seed: 18}
		heavy := impair.Config{Loss: 0.2, Delay: 150 * time.Millisecond, Seed: 18}
		dark := impair.Config{Delay: 50 * time.Millisecond, Blackout: impair.Blackout{Every: 6 * time.Second, For: 2 * time.Second}}
		moving := impair.Config{Delay: 20 * time.Millisecond, Rebind: 2 * time.Second}
		networks = append(networks, network{"loss 2%, RTT 100 ms", light, light, false},
			network{"loss 20%, RTT 300 ms", heavy, heavy, false},
			network{"RTT 100 ms, 2 s blackout every 6 s", dark, dark, false},
			network{"RTT 40 ms, new client port every 2 s", moving, moving, false})
	}
	for k, tc := range networks {
		udp0, tcp0 := relay.udp.Stats(), relay.tcp.Stats()
		relay.set(t, tc.udp, tc.tcp)
		logins := ""
		if *impairAll {
			// The "login (2 users)": two new users' first devices
			// log in through this network, one after the other.
			users := []string{fmt.Sprintf("la%d", k), fmt.Sprintf("lb%d", k)}
			for _, u := range users {
				mustHearth(t, password(u), "admin", "--dir", n.dir, "user", "add", u, "--password-stdin")
			}
			start := time.Now()
			for _, u := range users {
				p := newProfile(t, u)
				p.must(t, password(u), p.loginArgs(n.via(relay))...)
			}
			logins = fmt.Sprintf("login (2 users) %v; ", time.Since(start).Round(time.Millisecond))
		}
		var durations []time.Duration
		var want []string
		for i := range sends {
			text := fmt.Sprintf("%s #%d", tc.name, i)
			start := time.Now()
			if tc.onlyTCP {
				_, st := alice.runStats(t, nil, "send", bobAddr, text)
				if c := st.Connections; len(c) == 0 || c[0].Protocol != "websocket" || !c[0].Raced {
					t.Errorf("%s: send #%d: %s; want the raced WebSocket", tc.name, i, statsSummary(st))
				}
			} else {
				alice.must(t, "", "send", bobAddr, text)
			}
			durations = append(durations, time.Since(start))
			want = append(want, aliceAddr+":"+text)
		}
		relay.set(t, impair.Config{}, impair.Config{})
		expectRecv(t, bob, want...)
		u, tcpConns := since(relay.udp.Stats(), udp0), relay.tcp.Stats().Flows-tcp0.Flows
		if tc.onlyTCP && tcpConns < sends {
			t.Errorf("%s: %d TCP connections for %d sends: not all over the WebSocket", tc.name, tcpConns, sends)
		}
		slices.Sort(durations)
		t.Logf("%s: %s%d sends, p50 %v, max %v; UDP up %d datagrams, %d lost, %d blackholed; down %d, %d lost, %d blackholed; %d UDP flows, %d rebinds, %d TCP connections",
			tc.name, logins, sends, durations[len(durations)/2].Round(time.Millisecond), durations[len(durations)-1].Round(time.Millisecond),
			u.Up.PacketsIn, u.Up.Dropped, u.Up.Blackholed, u.Down.PacketsIn, u.Down.Dropped, u.Down.Blackholed, u.Flows, u.Rebinds, tcpConns)
	}
	if got := sameHistory(t, []*profile{alice, bob}, []string{bobAddr, aliceAddr}); got != 1+len(networks)*sends {
		t.Fatalf("history has %d messages, want %d", got, 1+len(networks)*sends)
	}
}

// since is the difference of the counters that the e2e log shows.
func since(now, then impair.Stats) impair.Stats {
	d := func(a, b impair.DirStats) impair.DirStats {
		return impair.DirStats{PacketsIn: a.PacketsIn - b.PacketsIn, Dropped: a.Dropped - b.Dropped, Blackholed: a.Blackholed - b.Blackholed}
	}
	return impair.Stats{Up: d(now.Up, then.Up), Down: d(now.Down, then.Down), Flows: now.Flows - then.Flows, Rebinds: now.Rebinds - then.Rebinds}
}

// TestImpairedFollowThroughBlackoutsAndRebinding: one long-lived session
// (`recv --follow`, alice, through the relay) across 5 % loss, RTT 200 ms,
// 2 s blackouts every 6 s and a NAT rebinding every 3 s; bob sends 15
// messages directly, about one a second, and alice prints each exactly
// once, in order. The time from bob's send to alice's line is logged.
//
//	go test -run TestImpairedFollowThroughBlackoutsAndRebinding -v ./cmd/hearth
func TestImpairedFollowThroughBlackoutsAndRebinding(t *testing.T) {
	parallelE2E(t)
	n, relay := newImpairedNet(t)
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), alice.loginArgs(n.via(relay))...)
	bob.must(t, password("bob"), bob.loginArgs(n)...)
	bob.must(t, "", "send", aliceAddr, "hello over a clean link")
	f := followArgs(t, alice, "--stats")
	if m := f.next(t); m.Text != "hello over a clean link" {
		t.Fatalf("first message %+v", m)
	}

	cfg := impair.Config{Loss: 0.05, Delay: 100 * time.Millisecond, Seed: 18,
		Blackout: impair.Blackout{Every: 6 * time.Second, For: 2 * time.Second}, Rebind: 3 * time.Second}
	relay.set(t, cfg, cfg)
	udp0, tcp0 := relay.udp.Stats(), relay.tcp.Stats()
	const sends = 15
	type arrival struct {
		m  chatMsg
		at time.Time
	}
	arrivals := make(chan arrival, sends)
	go func() { // stamps alice's lines as they come; ends with the follower at cleanup
		for range sends {
			m, ok := <-f.lines
			if !ok {
				break
			}
			arrivals <- arrival{m, time.Now()}
		}
		close(arrivals)
	}()
	sentAt := make([]time.Time, sends)
	for i := range sends {
		bob.must(t, "", "send", aliceAddr, fmt.Sprintf("follow #%d", i))
		sentAt[i] = time.Now()
		time.Sleep(time.Second) // spread the sends over blackouts and rebindings
	}
	var latencies []time.Duration
	for i := range sends {
		var a arrival
		var ok bool
		select {
		case a, ok = <-arrivals:
		case <-time.After(60 * time.Second):
		}
		if !ok {
			t.Fatalf("alice printed %d of %d messages", i, sends)
		}
		if want := fmt.Sprintf("follow #%d", i); a.m.Text != want || a.m.From != bobAddr {
			t.Fatalf("alice printed %q from %s, want %q", a.m.Text, a.m.From, want)
		}
		latencies = append(latencies, a.at.Sub(sentAt[i]))
	}
	u, tcpConns := since(relay.udp.Stats(), udp0), relay.tcp.Stats().Flows-tcp0.Flows
	relay.set(t, impair.Config{}, impair.Config{})
	bob.must(t, "", "send", aliceAddr, "after")
	if m := f.next(t); m.Text != "after" {
		t.Fatalf("after the impairment alice printed %+v, want \"after\" (a repeat?)", m)
	}
	// The session lived through the blackouts and the rebindings: one
	// connection, authenticated once (the counters, printed on SIGTERM).
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatal("recv --follow did not end on SIGTERM")
	}
	st := statsOf(t, f.stderr.String())
	if len(st.Connections) != 1 || st.Connections[0].Protocol != "quic" || st.Ops["client.Hello"].Count != 1 {
		t.Errorf("recv --follow: want one native QUIC connection and one Hello; %s", statsSummary(st))
	}
	t.Logf("recv --follow: %s", statsSummary(st))
	slices.Sort(latencies)
	t.Logf("%d messages followed; from bob's send returning to alice's line: p50 %v, max %v; %d rebinds, %d new UDP flows, %d TCP connections; down %d datagrams, %d lost, %d blackholed",
		sends, latencies[len(latencies)/2].Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond),
		u.Rebinds, u.Flows, tcpConns, u.Down.PacketsIn, u.Down.Dropped, u.Down.Blackholed)
}

// impairRefresh is how often the follower of TestPresenceConvergesAfterLoss
// asks its contacts' presence again; a long one shows that the test fails
// without the refresh: go test -run TestPresenceConvergesAfterLoss
// -impair.refresh 10m (the presence is then never seen).
var impairRefresh = flag.Duration("impair.refresh", 2*time.Second, "TestPresenceConvergesAfterLoss: the follower's --presence-refresh")

// TestPresenceConvergesAfterLoss: presence is a lossy signal (a datagram
// on QUIC), so one can be lost; the follower still converges. alice
// follows with --signals through the relay; every UDP packet is dropped
// for 1.5 s (her session survives it, no reconnect), and meanwhile bob
// goes online: the datagram telling alice is lost. Once the link is back,
// alice's next presence refresh prints bob online.
func TestPresenceConvergesAfterLoss(t *testing.T) {
	parallelE2E(t)
	n, relay := newImpairedNet(t)
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), alice.loginArgs(n.via(relay))...)
	bob.must(t, password("bob"), bob.loginArgs(n)...)
	alice.must(t, "", "send", bobAddr, "hello")
	expectRecv(t, bob, aliceAddr+":hello") // they share a conversation: each sees the other's presence

	w := watchSignals(t, alice, "--presence-refresh", impairRefresh.String())
	bob.must(t, "", "send", aliceAddr, "are you there")
	awaitWithin(t, w.lines, 30*time.Second, "bob's message", func(m map[string]any) bool { return m["text"] == "are you there" }, nil)

	relay.set(t, impair.Config{Loss: 1}, impair.Config{})
	bob.must(t, "", "presence", "online")
	time.Sleep(1500 * time.Millisecond)
	lost := relay.udp.Stats().Down.Dropped
	relay.set(t, impair.Config{}, impair.Config{})
	if lost == 0 {
		t.Fatal("no packet to alice was dropped during the outage")
	}
	awaitWithin(t, w.lines, 15*time.Second, "bob online after the outage", isPresence(bobAddr, "online"), nil)
	w.stop(t)
}
