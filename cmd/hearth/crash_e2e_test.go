package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hearth/client"
	"hearth/keys/testutil"
)

// crashMessages and crashKills are the numbers of issue 3's crash test.
const (
	crashMessages = 2000
	crashKills    = 2
)

// sent is one message the crash test's sender queued, in send order.
type sent struct {
	id    string
	text  string
	acked bool // Flush(id) returned nil: the sender got SendOK
	err   error
}

// crashSender sends crashMessages messages to bob from a1's profile with the
// real client library, one Queue+Flush at a time, recording which were
// acknowledged. progress counts finished sends.
type crashSender struct {
	mu   sync.Mutex
	msgs []sent
	done chan error
}

func (s *crashSender) finished() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *crashSender) run(ctx context.Context, c *client.Client) {
	for i := range crashMessages {
		text := fmt.Sprintf("crash-%04d", i)
		id, err := c.Queue(bobAddr, text)
		if err != nil { // the profile store is local: this must not fail
			s.done <- fmt.Errorf("queue %s: %w", text, err)
			return
		}
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = c.Flush(fctx, id)
		cancel()
		if ctx.Err() != nil {
			s.done <- ctx.Err()
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, sent{id: id, text: text, acked: err == nil, err: err})
		s.mu.Unlock()
	}
	s.done <- nil
}

// killAndRestart kills the server with SIGKILL (no shutdown at all) and
// starts it again on the same folder and port.
func (n *chatNet) killAndRestart(t *testing.T) {
	t.Helper()
	n.srv.stop(t, syscall.SIGKILL)
	addr := n.srv.addr
	n.srv = startServe(t, n.dir, nil, "--dir", n.dir)
	if n.srv.addr != addr {
		t.Fatalf("server came back on %s, want %s", n.srv.addr, addr)
	}
}

// TestCrashKillDuringSends is issue 3's crash test: alice sends 2,000
// messages to bob with the client library while the server is killed with
// SIGKILL and restarted twice. Bob's device and alice's second device run
// `recv --follow` through the crashes; afterwards each holds every
// acknowledged message exactly once, in send order, and nothing twice.
func TestCrashKillDuringSends(t *testing.T) {
	parallelE2E(t)
	start := time.Now()
	n, a1, b1 := newMessagingNet(t)
	a2 := newProfile(t, "alice")
	linkDevice(t, n, a2, a1)
	// The conversation exists (with every device) before the run.
	a1.must(t, "", "send", bobAddr, "before the crashes")
	var recipients []*liveLog
	for _, p := range []*profile{b1, a2} {
		f := follow(t, p)
		if m := f.next(t); m.Text != "before the crashes" {
			t.Fatalf("%s: follower printed %+v first", p.dir, m)
		}
		recipients = append(recipients, collect(f))
	}

	c, err := client.Open(client.Config{Profile: a1.dir, Dial: dialServer, Groups: newGroupEngine(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := &crashSender{done: make(chan error, 1)}
	go s.run(ctx, c)
	for k := 1; k <= crashKills; k++ {
		// Kill while sends are in flight: after a third and two thirds.
		s.await(t, k*crashMessages/(crashKills+1))
		n.killAndRestart(t)
		t.Logf("kill %d after %d sends (%v)", k, s.finished(), time.Since(start).Round(time.Millisecond))
	}
	if err := <-s.done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Sent after everything: a device that printed it has printed all
	// the server had for it before, duplicates included.
	a1.must(t, "", "send", bobAddr, crashLast)
	acked := 0
	for _, m := range s.msgs {
		if m.acked {
			acked++
		} else {
			t.Logf("%s not acknowledged: %v", m.text, m.err)
		}
	}
	t.Logf("%d of %d sends acknowledged (%v)", acked, len(s.msgs), time.Since(start).Round(time.Millisecond))
	if acked < crashMessages/2 {
		t.Fatalf("only %d of %d sends were acknowledged", acked, crashMessages)
	}

	// Alice's own history holds every acknowledged message.
	checkCrashHistory(t, "alice's sending device", historyOf(t, a1, bobAddr), s.msgs)
	for i, p := range []*profile{b1, a2} {
		who := []string{"bob", "alice's second device"}[i]
		checkCrashHistory(t, who+" recv --follow", recipients[i].until(t, s.msgs), s.msgs)
		recipients[i].stop(t)
		peer := map[string]string{"bob": aliceAddr}[p.user]
		if peer == "" {
			peer = bobAddr
		}
		checkCrashHistory(t, who+" history", historyOf(t, p, peer), s.msgs)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// await waits until the sender finished at least k sends.
func (s *crashSender) await(t *testing.T, k int) {
	t.Helper()
	testutil.WaitFor(t, 3*time.Minute, func() error {
		if n := s.finished(); n < k {
			return fmt.Errorf("sender finished %d of %d sends", n, k)
		}
		return nil
	})
}

// historyOf is the conversation as p's device holds it.
func historyOf(t *testing.T, p *profile, peer string) []chatMsg {
	t.Helper()
	return parseMsgs(t, p.must(t, "", "history", peer, "--json"))
}

// checkCrashHistory checks that got (one device's messages, in the order
// the device holds or printed them) contains each acknowledged message of
// sends exactly once, nothing twice, and the crash messages in send order.
// Unacknowledged messages may be missing.
func checkCrashHistory(t *testing.T, who string, got []chatMsg, sends []sent) {
	t.Helper()
	index := make(map[string]int, len(sends))
	for i, m := range sends {
		index[m.id] = i
	}
	seen := map[string]bool{}
	last := -1
	for _, m := range got {
		if seen[m.ID] {
			t.Fatalf("%s: message %s (%q) twice", who, m.ID, m.Text)
		}
		seen[m.ID] = true
		if !strings.HasPrefix(m.Text, "crash-") {
			continue
		}
		i, ok := index[m.ID]
		if !ok || sends[i].text != m.Text || m.From != aliceAddr {
			t.Fatalf("%s: message %s %q from %s was not sent by the test", who, m.ID, m.Text, m.From)
		}
		if i <= last {
			t.Fatalf("%s: %s after %s: not in send order", who, m.Text, sends[last].text)
		}
		last = i
	}
	missing := 0
	for _, m := range sends {
		if m.acked && !seen[m.id] {
			missing++
			if missing <= 5 {
				t.Errorf("%s: acknowledged message %s (%s) missing", who, m.text, m.id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d acknowledged messages missing (holds %d messages)", who, missing, len(got))
	}
}

// liveLog collects what a follower prints, draining it so that it never
// blocks on a full pipe.
type liveLog struct {
	f    *follower
	mu   sync.Mutex
	msgs []chatMsg
	more chan struct{}
}

func collect(f *follower) *liveLog {
	l := &liveLog{f: f, more: make(chan struct{}, 1)}
	go func() {
		for m := range f.lines {
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// crashLast is the message alice sends after the crash run.
const crashLast = "after the crashes"

// until waits until every acknowledged message of sends and then
// crashLast were printed (or a minute passes without progress) and returns
// what was printed.
func (l *liveLog) until(t *testing.T, sends []sent) []chatMsg {
	t.Helper()
	want := map[string]bool{}
	for _, m := range sends {
		if m.acked {
			want[m.id] = true
		}
	}
	for {
		l.mu.Lock()
		have, last := 0, false
		for _, m := range l.msgs {
			if want[m.ID] {
				have++
			}
			last = last || m.Text == crashLast
		}
		out := append([]chatMsg(nil), l.msgs...)
		l.mu.Unlock()
		if have >= len(want) && last {
			return out
		}
		select {
		case <-l.more:
		case <-time.After(time.Minute):
			t.Logf("follower stalled with %d of %d acknowledged messages (%q printed: %v)", have, len(want), crashLast, last)
			return out
		}
	}
}

// stop interrupts the follower, which must exit cleanly.
func (l *liveLog) stop(t *testing.T) {
	t.Helper()
	l.f.cmd.Process.Signal(syscall.SIGINT)
	if err := <-l.f.done; err != nil {
		t.Fatalf("recv --follow after SIGINT: %v", err)
	}
}
