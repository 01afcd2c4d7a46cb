package impair

import (
	"encoding/binary"
	"net"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"
)

func TestBlackoutWindows(t *testing.T) {
	b := Blackout{Every: 6 * time.Second, For: 2 * time.Second}
	for _, tc := range []struct {
		at   time.Duration
		down bool
		up   time.Duration
	}{
		{0, false, 0},
		{3999 * time.Millisecond, false, 3999 * time.Millisecond},
		{4 * time.Second, true, 6 * time.Second},
		{5999 * time.Millisecond, true, 6 * time.Second},
		{6 * time.Second, false, 6 * time.Second},
		{11 * time.Second, true, 12 * time.Second},
	} {
		if got := b.down(tc.at); got != tc.down {
			t.Errorf("down(%v) = %v", tc.at, got)
		}
		if got := b.upAt(tc.at); got != tc.up {
			t.Errorf("upAt(%v) = %v, want %v", tc.at, got, tc.up)
		}
	}
	if (Blackout{}).down(time.Hour) {
		t.Error("zero Blackout is down")
	}
}

func TestDecisionsFollowSeed(t *testing.T) {
	cfg := Config{Loss: 0.3, Reorder: 0.2, Duplicate: 0.2, Jitter: 10 * time.Millisecond, Seed: 7}
	fates := func(seed int64) []fate {
		cfg.Seed = seed
		now := time.Unix(0, 0)
		s := newShaper(cfg, 1, now)
		var out []fate
		for i := range 200 {
			out = append(out, s.decide(now.Add(time.Duration(i)*time.Millisecond), 100, false))
		}
		return out
	}
	a, b, c := fates(7), fates(7), fates(8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different decisions")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same decisions")
	}
}

func TestConfigRefused(t *testing.T) {
	s := newSink(t, false)
	for _, cfg := range []Config{
		{Loss: 1.5}, {Delay: -1}, {Blackout: Blackout{Every: time.Second, For: 2 * time.Second}},
	} {
		ln, _ := ListenUDP("127.0.0.1:0")
		if _, err := NewUDP(ln, s.addr(), cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
		ln.Close()
	}
	for _, up := range []string{"10.1.2.3:443", "192.0.2.1:7443", "[2001:db8::1]:443"} {
		ln, _ := ListenUDP("127.0.0.1:0")
		if _, err := NewUDP(ln, up, Config{}, nil); err == nil {
			t.Errorf("UDP upstream %s accepted", up)
		}
		ln.Close()
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		if _, err := NewTCP(l, up, Config{}, nil); err == nil {
			t.Errorf("TCP upstream %s accepted", up)
		}
		l.Close()
	}
	if _, err := ListenUDP("0.0.0.0:0"); err == nil {
		t.Error("listening on all addresses accepted")
	}
}

func TestUDPLossFollowsRateAndSeed(t *testing.T) {
	const n = 2000
	run := func() ([]uint64, Stats) {
		s := newSink(t, false)
		r := newUDPRelay(t, s.addr(), Config{Loss: 0.2, Seed: 42})
		sendPaced(t, dialRelay(t, r), r, n)
		delivered(t, r, s)
		return s.received(), r.Stats()
	}
	got1, st := run()
	if st.Up.PacketsIn != n || st.Up.PacketsOut+st.Up.Dropped != n {
		t.Fatalf("stats %+v for %d packets", st.Up, n)
	}
	if rate := float64(st.Up.Dropped) / n; rate < 0.16 || rate > 0.24 {
		t.Errorf("loss rate %.3f, want 0.2 ± 0.04", rate)
	}
	got2, _ := run()
	if !slices.Equal(got1, got2) {
		t.Errorf("same seed, different packets lost (%d vs %d received)", len(got1), len(got2))
	}
	t.Logf("loss 0.2: %d of %d dropped", st.Up.Dropped, n)
}

func TestUDPDelay(t *testing.T) {
	s := newSink(t, true)
	r := newUDPRelay(t, s.addr(), Config{Delay: 100 * time.Millisecond, Jitter: 20 * time.Millisecond})
	c := dialRelay(t, r)
	buf := make([]byte, 2048)
	var rtts []time.Duration
	for i := range 10 {
		start := time.Now()
		sendSeq(t, c, uint64(i))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	// Two one-way delays of 100 ms ± 20 ms: never under 160 ms; the upper
	// bound is loose for a loaded machine.
	if rtts[0] < 160*time.Millisecond || rtts[len(rtts)/2] > 2*time.Second {
		t.Errorf("round trips %v, want about 200 ms", rtts)
	}
	t.Logf("round trips through 100 ms ± 20 ms each way: min %v, median %v, max %v", rtts[0], rtts[len(rtts)/2], rtts[len(rtts)-1])
}

func TestUDPDuplicateAndReorder(t *testing.T) {
	s := newSink(t, false)
	r := newUDPRelay(t, s.addr(), Config{Duplicate: 0.1, Reorder: 0.1, Seed: 3})
	const n = 1000
	sendPaced(t, dialRelay(t, r), r, n)
	delivered(t, r, s)
	got, st := s.received(), r.Stats()
	if st.Up.Dropped != 0 || uint64(len(got)) != n+st.Up.Duplicated || st.Up.Duplicated < 50 {
		t.Fatalf("received %d of %d with %+v", len(got), n, st.Up)
	}
	late, maxSeen := 0, uint64(0)
	for i, q := range got {
		if i > 0 && q < maxSeen {
			late++
		}
		maxSeen = max(maxSeen, q)
	}
	if late == 0 || st.Up.Reordered < 50 {
		t.Errorf("%d datagrams arrived after a later one, %d reordered", late, st.Up.Reordered)
	}
	sorted := slices.Clone(got)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	if u := slices.Compact(sorted); len(u) != n {
		t.Errorf("%d distinct datagrams, want %d", len(u), n)
	}
	t.Logf("%d duplicated, %d reordered, %d arrived after a later one", st.Up.Duplicated, st.Up.Reordered, late)
}

// TestUDPBlackout: up for 1 s, down for 1 s, twice. Datagrams sent well
// inside a window (250 ms margins for a loaded machine) all pass or all
// vanish.
func TestUDPBlackout(t *testing.T) {
	s := newSink(t, false)
	start := time.Now()
	r := newUDPRelay(t, s.addr(), Config{Blackout: Blackout{Every: 2 * time.Second, For: time.Second}})
	c := dialRelay(t, r)
	sentAt := map[uint64]time.Duration{}
	var seq uint64
	for time.Since(start) < 4*time.Second {
		sentAt[seq] = time.Since(start)
		sendSeq(t, c, seq)
		seq++
		time.Sleep(20 * time.Millisecond)
	}
	delivered(t, r, s)
	got := map[uint64]bool{}
	for _, q := range s.received() {
		got[q] = true
	}
	checked := 0
	for q, at := range sentAt {
		phase := at % (2 * time.Second)
		switch {
		case phase > 250*time.Millisecond && phase < 750*time.Millisecond && !got[q]:
			t.Errorf("datagram sent at %v (link up) lost", at)
		case phase > 1250*time.Millisecond && phase < 1750*time.Millisecond && got[q]:
			t.Errorf("datagram sent at %v (blackout) passed", at)
		default:
			continue
		}
		checked++
	}
	st := r.Stats()
	if st.Up.Blackholed == 0 || st.Up.PacketsOut == 0 {
		t.Errorf("stats %+v", st.Up)
	}
	t.Logf("%d sent, %d blackholed, %d passed", seq, st.Up.Blackholed, st.Up.PacketsOut)
}

// TestUDPRebind: the upstream sees the client from a new port every
// period, and replies still reach the client after each change.
func TestUDPRebind(t *testing.T) {
	s := newSink(t, true)
	r := newUDPRelay(t, s.addr(), Config{Rebind: 200 * time.Millisecond})
	c := dialRelay(t, r)
	buf := make([]byte, 2048)
	replies := 0
	for i := 0; s.sourcePorts() < 4 || r.Stats().Rebinds < 3; i++ {
		if i > 500 {
			t.Fatalf("after %d pings: %d source ports, %+v", i, s.sourcePorts(), r.Stats())
		}
		sendSeq(t, c, uint64(i))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); err == nil {
			replies++
		}
		time.Sleep(30 * time.Millisecond)
	}
	if replies == 0 {
		t.Fatal("no replies")
	}
	// After the last rebind, a ping goes out and its echo comes back.
	before := r.Stats().Rebinds
	for i := 0; ; i++ {
		sendSeq(t, c, 1e6)
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); err == nil && binary.BigEndian.Uint64(buf) == 1e6 {
			break
		}
		if i > 20 {
			t.Fatal("no echo after rebinding")
		}
	}
	t.Logf("%d source ports seen by the upstream, %d rebinds, %d replies", s.sourcePorts(), before, replies)
}

func TestUDPCloseFreesEverything(t *testing.T) {
	s := newSink(t, true)
	base := runtime.NumGoroutine()
	ln, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.LocalAddr().String()
	r, err := NewUDP(ln, s.addr(), Config{Delay: 50 * time.Millisecond, Rebind: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		c := dialRelay(t, r)
		for j := range 10 {
			sendSeq(t, c, uint64(i*10+j))
		}
	}
	waitFor(t, 10*time.Second, "five flows", func() bool { return r.Stats().Flows == 5 })
	time.Sleep(200 * time.Millisecond) // a few rebinds, datagrams in flight
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	settled(t, base)
	again, err := ListenUDP(addr) // the port is free again
	if err != nil {
		t.Fatalf("listen on the relay's port after Close: %v", err)
	}
	again.Close()
}

// TestUDPIdleFlowExpires: a silent client's upstream socket goes, as a NAT
// mapping would; when it sends again it gets a new one, with a new port.
func TestUDPIdleFlowExpires(t *testing.T) {
	s := newSink(t, false)
	r := newUDPRelay(t, s.addr(), Config{FlowIdle: 200 * time.Millisecond})
	c := dialRelay(t, r)
	sendSeq(t, c, 1)
	waitFor(t, 10*time.Second, "one live flow", func() bool { return r.Stats().Live == 1 })
	waitFor(t, 10*time.Second, "the flow expires", func() bool { return r.Stats().Live == 0 })
	sendSeq(t, c, 2)
	waitFor(t, 10*time.Second, "a new flow and a new source port", func() bool {
		st := r.Stats()
		return st.Live == 1 && st.Flows == 2 && s.sourcePorts() == 2
	})
}

// TestUDPRate: 100 datagrams of 1,000 bytes at 100,000 bytes/s take at
// least 0.9 s to get through (a lower bound only: a loaded machine is slower).
func TestUDPRate(t *testing.T) {
	s := newSink(t, false)
	r := newUDPRelay(t, s.addr(), Config{RateBytesPerSec: 100_000})
	c := dialRelay(t, r)
	start := time.Now()
	b := make([]byte, 1000)
	for i := range 100 {
		binary.BigEndian.PutUint64(b, uint64(i))
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			want := uint64(i + 1)
			waitFor(t, 10*time.Second, "relay reads the batch", func() bool { return r.Stats().Up.PacketsIn >= want })
		}
	}
	delivered(t, r, s)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("100 kB through a 100 kB/s link in %v", d)
	}
	if got := s.received(); len(got) != 100 || !slices.IsSorted(got) {
		t.Errorf("received %d datagrams, sorted %v", len(got), slices.IsSorted(got))
	}
}
