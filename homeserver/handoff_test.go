package homeserver

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/delivery"
	"hearth/homeserver/wire"
)

// pushReads sums the database reads of the device's current pushers.
func (h *harness) pushReads(deviceID string) uint64 {
	ss := h.s.reg.sessionsOfDevices([]string{deviceID})
	var n uint64
	for _, s := range ss {
		if p := s.currentPush(); p != nil {
			n += p.Reads()
		}
	}
	return n
}

// checkStored fails unless got (in seq order) equals what the mailbox
// holds for c in conv, field by field, as a fresh read delivers it.
func checkStored(t *testing.T, h *harness, c *client, convID string, got []*wire.Delivery) {
	t.Helper()
	stored, err := h.s.History(context.Background(), c.access, convID, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(stored)
	bySeq := map[uint64]*wire.Delivery{}
	for _, d := range stored {
		bySeq[d.Seq] = d
	}
	for _, d := range got {
		if !proto.Equal(d, bySeq[d.Seq]) {
			t.Fatalf("pushed %v\nstored %v", d, bySeq[d.Seq])
		}
	}
}

// contiguous fails unless the deliveries' seqs are from, from+1, ...
func contiguous(t *testing.T, ds []*wire.Delivery, from uint64) {
	t.Helper()
	for i, d := range ds {
		if d.Seq != from+uint64(i) {
			t.Fatalf("delivery %d has seq %d, want %d (duplicate or gap)", i, d.Seq, from+uint64(i))
		}
	}
}

var noLimit = RateLimit{PerSecond: 1e9, Burst: 1 << 30}

// TestHandoffCaughtUpNoRead: a caught-up pusher pushes what a Send just
// committed without reading it back, messages and welcomes alike, and
// what it pushes equals what a read of the mailbox gives.
func TestHandoffCaughtUpNoRead(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	carol, _ := h.firstDevice("carol")
	bob.must(syncFrame(0))
	got := bob.deliveries(1) // the welcome: read by the Sync's first pass
	carol.must(syncFrame(0)) // empty mailbox: one read
	for i := range 10 {
		alice.must(appMsg(conv, fmt.Sprint("m", i), 1, fmt.Sprint("msg ", i)))
		d := bob.deliveries(1)[0]
		got = append(got, d)
		bob.must(ackFrame(d.Seq)) // an ack moves the window; nothing to read
	}
	alice.must(commit(conv, "c1", 1, []string{carol.addr()}, nil))
	got = append(got, bob.deliveries(1)...)
	welcome := carol.deliveries(1)
	contiguous(t, got, 1)
	checkStored(t, h, bob, conv, got)
	checkStored(t, h, carol, conv, welcome)
	if w := welcome[0]; w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || string(w.GroupInfo) != "group-info-epoch-2" || w.Seq != 1 {
		t.Fatalf("welcome %v", w)
	}
	if n := h.pushReads(bob.device); n != 1 {
		t.Fatalf("bob's pusher read the database %d times; want 1 (the Sync)", n)
	}
	if n := h.pushReads(carol.device); n != 1 {
		t.Fatalf("carol's pusher read the database %d times; want 1 (the Sync)", n)
	}
	bob.noDelivery()
	carol.noDelivery()
}

// sendAll sends n messages from c, pipelined, and waits for every answer.
func sendAll(t *testing.T, c *client, prefix string, n int) {
	var chs []<-chan *wire.ServerFrame
	for i := range n {
		chs = append(chs, c.start(appMsg(conv, fmt.Sprint(prefix, i), 1, fmt.Sprint(prefix, " says ", i))))
	}
	for _, ch := range chs {
		if r := c.await(ch); r.GetSendOk() == nil {
			t.Errorf("send: %v", r)
		}
	}
}

// TestHandoffConcurrentSenders: entries of concurrent senders reach the
// recipient once each, in mailbox order, each sender's in its order.
func TestHandoffConcurrentSenders(t *testing.T) {
	h := newHarness(t, Config{RateLimit: noLimit})
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	senders := []*client{alice}
	for i := range 3 {
		c, _ := h.firstDevice(fmt.Sprint("s", i))
		senders = append(senders, c)
	}
	createConv(alice, conv)
	adds := []string{bob.addr()}
	for _, c := range senders[1:] {
		adds = append(adds, c.addr())
	}
	alice.must(commit(conv, "c0", 0, adds, nil))
	bob.must(syncFrame(0))
	bob.deliveries(1)
	const each = 40
	var wg sync.WaitGroup
	for i, c := range senders {
		wg.Go(func() { sendAll(t, c, fmt.Sprint("p", i, "-"), each) })
	}
	got := bob.deliveries(len(senders) * each)
	wg.Wait()
	contiguous(t, got, 2)
	checkStored(t, h, bob, conv, got)
	next := map[string]int{}
	lastConvSeq := uint64(0)
	for _, d := range got {
		if want := fmt.Sprint(d.MessageId[:3], next[d.Sender]); d.MessageId != want {
			t.Fatalf("from %s got %s, want %s", d.Sender, d.MessageId, want)
		}
		next[d.Sender]++
		if d.ConversationSeq <= lastConvSeq {
			t.Fatalf("conversation seq %d after %d", d.ConversationSeq, lastConvSeq)
		}
		lastConvSeq = d.ConversationSeq
	}
	bob.noDelivery()
	t.Logf("%d deliveries, %d pusher reads", len(got), h.pushReads(bob.device))
}

// TestHandoffWindowFullFallsBack: a pusher whose window is full keeps at
// most delivery.MaxHandoffs hints and reads the rest from the database once acks
// move the window; everything arrives once, in order.
func TestHandoffWindowFullFallsBack(t *testing.T) {
	const window = 8
	h := newHarness(t, Config{RateLimit: noLimit, DeliveryWindow: window})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.must(ackFrame(bob.deliveries(1)[0].Seq))
	sendAll(t, alice, "w", window)
	got := bob.deliveries(window)
	bob.noDelivery() // the window is full
	// All of these are handed while the window is full: delivery.MaxHandoffs are
	// kept, the rest dropped with no later hint to reveal the gap.
	const n = delivery.MaxHandoffs + 36
	sendAll(t, alice, "m", n)
	for len(got) < window+n {
		bob.must(ackFrame(got[len(got)-1].Seq))
		got = append(got, bob.deliveries(min(window, window+n-len(got)))...)
		if len(got) < window+n {
			bob.noDelivery() // the window is full: nothing more until an ack
		}
	}
	contiguous(t, got, 2)
	checkStored(t, h, bob, conv, got)
	bob.noDelivery()
	if r := h.pushReads(bob.device); r < 2 {
		t.Fatalf("%d pusher reads: the hints dropped over the bound were never read", r)
	}
}

// TestHandoffSyncInTheMiddle: a Sync with after_seq behind what was pushed
// pushes again from there (read), then continues with handed entries,
// each once.
func TestHandoffSyncInTheMiddle(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1)
	for i := range 5 {
		alice.must(appMsg(conv, fmt.Sprint("a", i), 1, "first"))
	}
	contiguous(t, bob.deliveries(5), 2)
	bob.must(syncFrame(3))
	again := bob.deliveries(3)
	contiguous(t, again, 4)
	for i := range 5 {
		alice.must(appMsg(conv, fmt.Sprint("b", i), 1, "second"))
	}
	after := bob.deliveries(5)
	contiguous(t, after, 7)
	checkStored(t, h, bob, conv, append(again, after...))
	bob.noDelivery()
	if r := h.pushReads(bob.device); r != 1 {
		t.Fatalf("the new pusher read %d times; want 1", r)
	}
}

// TestHandoffReconnect: entries sent while the device was away, and after a
// server restart, come from the mailbox; later ones are handed; each once.
func TestHandoffReconnect(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1)
	bob.conn.Close()
	alice.must(appMsg(conv, "away", 1, "while away"))
	b2 := h.connect()
	b2.hello(bob.access)
	b2.must(syncFrame(1))
	got := b2.deliveries(1)
	alice.must(appMsg(conv, "back", 1, "when back"))
	got = append(got, b2.deliveries(1)...)
	h.restart()
	a3, b3 := h.connect(), h.connect()
	a3.hello(alice.access)
	b3.hello(bob.access)
	b3.must(syncFrame(3))
	a3.must(appMsg(conv, "restarted", 1, "after restart"))
	got = append(got, b3.deliveries(1)...)
	contiguous(t, got, 2)
	b3.user, b3.access = bob.user, bob.access
	checkStored(t, h, b3, conv, got)
	b3.noDelivery()
}

// TestHandoffNothingBeforeCommit: a Send whose transaction fails after it
// wrote the mailbox rows (a trigger aborts the dedup insert, which comes
// last) pushes nothing; the next message takes the same mailbox seq.
func TestHandoffNothingBeforeCommit(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1)
	raw, err := sql.Open("sqlite3-hearth", h.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER fail_boom BEFORE INSERT ON send_records WHEN NEW.message_id = 'boom'
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	alice.fails(appMsg(conv, "boom", 1, "must never be pushed"), wire.Code_CODE_INTERNAL)
	bob.noDelivery()
	alice.must(appMsg(conv, "fine", 1, "committed"))
	d := bob.deliveries(1)[0]
	if d.Seq != 2 || d.MessageId != "fine" || string(d.Payload) != "committed" {
		t.Fatalf("got %v", d)
	}
	checkStored(t, h, bob, conv, []*wire.Delivery{d})
	bob.noDelivery()
}

// TestAckOfPushedStartsNoPass: an Ack of what was pushed, read and then
// durable, starts no push pass (no goroutine for nothing); the next
// message is still pushed, and a full window still resumes on an Ack
// (TestHandoffWindowFullFallsBack).
func TestAckOfPushedStartsNoPass(t *testing.T) {
	h := newHarness(t, Config{RateLimit: noLimit})
	alice, bob := twoUsers(t, h)
	bob.must(syncFrame(0))
	bob.deliveries(1)
	sendAll(t, alice, "a", 5)
	got := bob.deliveries(5)
	contiguous(t, got, 2)
	p := h.s.reg.sessionsOfDevices([]string{bob.device})[0].currentPush()
	waitFor(t, 5*time.Second, func() bool { return !p.Running() })
	before := p.Passes()
	bob.must(ackFrame(got[len(got)-1].Seq)) // answered once durable: both the read and the durable ack are done
	if after := p.Passes(); after != before {
		t.Fatalf("an Ack of everything pushed ran %d push passes", after-before)
	}
	alice.must(appMsg(conv, "b", 1, "after the ack"))
	if d := bob.deliveries(1)[0]; d.Seq != got[len(got)-1].Seq+1 {
		t.Fatalf("next delivery seq %d", d.Seq)
	}
}
