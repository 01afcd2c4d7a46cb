package homeserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

const fedWait = 30 * time.Second // hang guard

func addCommit(conv, msgID string, epoch uint64, add ...string) *wire.ClientFrame {
	return commit(conv, msgID, epoch, add, nil)
}

// TestFederationDirect: a 1:1 conversation across each pair of three
// servers; the remote member gets the welcome, sends through the hub, and
// both sides see the same order.
func TestFederationDirect(t *testing.T) {
	a, b, c := newFedNode(t, "a.example"), newFedNode(t, "b.example"), newFedNode(t, "c.example")
	pinAll(t, a, b, c)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	_, carol := c.addUser("carol")
	for _, cl := range []*client{alice, bob, carol} {
		cl.must(syncFrame(0))
	}
	pairs := []struct {
		hub, other *client
		conv       string
	}{{alice, bob, "ab@a.example"}, {bob, carol, "bc@b.example"}, {carol, alice, "ca@c.example"}}
	for _, p := range pairs {
		createFedConv(p.hub, p.conv)
		if ok := p.hub.must(addCommit(p.conv, "add-"+p.conv, 0, p.other.addr())).GetSendOk(); ok.ConversationSeq != 1 {
			t.Fatalf("%s: commit seq %d", p.conv, ok.ConversationSeq)
		}
		w := collect(t, p.other, 1, fedWait)[0]
		if w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || w.ConversationId != p.conv || string(w.Payload) != "welcome-add-"+p.conv {
			t.Fatalf("%s: want the welcome, got %v", p.conv, w)
		}
		ok := sendRetry(t, p.other, appMsg(p.conv, "hello-"+p.conv, 1, "hi from "+p.other.user), fedWait)
		if ok.ConversationSeq != 2 || ok.Duplicate {
			t.Fatalf("%s: remote send answered %v", p.conv, ok)
		}
		d := collect(t, p.hub, 1, fedWait)[0]
		if d.ConversationSeq != 2 || d.Sender != p.other.addr() || string(d.Payload) != "hi from "+p.other.user {
			t.Fatalf("%s: hub member got %v", p.conv, d)
		}
		// The retry of an accepted message is answered from the dedup record.
		if again := p.other.must(appMsg(p.conv, "hello-"+p.conv, 1, "hi from "+p.other.user)).GetSendOk(); !again.Duplicate || again.ConversationSeq != 2 {
			t.Fatalf("%s: retry answered %v", p.conv, again)
		}
		p.hub.must(appMsg(p.conv, "reply-"+p.conv, 1, "reply"))
		if d := collect(t, p.other, 1, fedWait)[0]; d.ConversationSeq != 3 || string(d.Payload) != "reply" {
			t.Fatalf("%s: follower got %v", p.conv, d)
		}
	}
	// A stale commit from a follower gets the hub's verdict.
	bob.fails(addCommit("ab@a.example", "stale", 0), wire.Code_CODE_STALE_EPOCH)
}

// history is one device's view of a conversation: conversation seq -> message id.
type history map[uint64]string

// TestFederationGroupConcurrent: members on three servers send at once;
// every device ends with the same ordered history, each message exactly once.
func TestFederationGroupConcurrent(t *testing.T) {
	_, _, _, alice, bob, carol, conv := groupOfThree(t)
	clients := []*client{alice, bob, carol}

	const perSender = 15
	views := make([]history, len(clients))
	var wg sync.WaitGroup
	for i, cl := range clients {
		views[i] = history{1: "add"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perSender {
				id := fmt.Sprintf("%s-%d", cl.user, k)
				ok := sendRetry(t, cl, appMsg(conv, id, 1, id), fedWait)
				views[i][ok.ConversationSeq] = id
			}
		}()
	}
	wg.Wait()
	total := 1 + perSender*len(clients)
	for i, cl := range clients {
		for _, d := range collect(t, cl, total-1-perSender, fedWait) {
			if _, dup := views[i][d.ConversationSeq]; dup {
				t.Fatalf("%s: conversation seq %d twice", cl.user, d.ConversationSeq)
			}
			views[i][d.ConversationSeq] = d.MessageId
		}
		cl.noDelivery()
	}
	for i := range clients {
		if len(views[i]) != total {
			t.Fatalf("%s has %d messages, want %d", clients[i].user, len(views[i]), total)
		}
		for seq := uint64(1); seq <= uint64(total); seq++ {
			if views[i][seq] != views[0][seq] || views[i][seq] == "" {
				t.Fatalf("seq %d: %s has %q, %s has %q", seq, clients[i].user, views[i][seq], clients[0].user, views[0][seq])
			}
		}
	}
}

// orderedSeqs checks deliveries come in increasing conversation order.
func orderedSeqs(t *testing.T, who string, ds []*wire.Delivery) []uint64 {
	t.Helper()
	var out []uint64
	for _, d := range ds {
		out = append(out, d.ConversationSeq)
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i] < out[j] }) {
		t.Fatalf("%s: deliveries out of order: %v", who, out)
	}
	return out
}

// TestFederationFaults: the hub stops while a follower sends (the device
// is answered UNAVAILABLE, retries with the same id), a follower stops
// while the hub sends (its queue backs off for several steps), both come
// back: every acknowledged message arrives exactly once, in order.
func TestFederationFaults(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "faults@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait)

	// Hub down: bob's sends are queued durably and answered UNAVAILABLE.
	a.stop()
	r := bob.call(appMsg(conv, "while-hub-down", 1, "x"))
	if r.GetError().GetCode() != wire.Code_CODE_UNAVAILABLE {
		t.Fatalf("send with the hub down: %v", r)
	}
	waitBackoff(t, b, "a.example", 1, 3) // several backoff steps
	a.start()
	alice = a.resume(alice, 0)
	okBob := sendRetry(t, bob, appMsg(conv, "while-hub-down", 1, "x"), fedWait)
	if okBob.ConversationSeq != 2 {
		t.Fatalf("retry after the hub returned: %v", okBob)
	}

	// Follower down: the hub's messages wait in its queue.
	b.stop()
	for k := range 5 {
		alice.must(appMsg(conv, fmt.Sprint("to-b-", k), 1, "y"))
	}
	waitBackoff(t, a, "b.example", 5, 3)
	b.start()
	bob = b.resume(bob, 1) // bob acked the welcome
	all := append(collect(t, alice, 1, fedWait), nil)[:1]
	if all[0].MessageId != "while-hub-down" {
		t.Fatalf("alice got %v", all[0])
	}
	got := collect(t, bob, 5, fedWait)
	seqs := orderedSeqs(t, "bob", got)
	if fmt.Sprint(seqs) != "[3 4 5 6 7]" {
		t.Fatalf("bob got seqs %v", seqs)
	}
	bob.noDelivery()
	alice.noDelivery()
}

// waitBackoff waits until node's queue to dest has failed attempts times
// with at least depth envelopes waiting (an answer lost in the stop may
// leave one more, delivered again and deduplicated later).
func waitBackoff(t *testing.T, n *fedNode, dest string, depth, attempts int) {
	t.Helper()
	end := time.Now().Add(fedWait)
	for {
		st, err := n.s.FederationList(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Peers {
			if p.Domain == dest && p.QueueDepth >= depth && p.Attempts >= attempts && p.NextAttemptMs > 0 {
				return
			}
		}
		if time.Now().After(end) {
			n.db.Read(context.Background(), func(tx *storage.Tx) error {
				es, _ := tx.Outbox(dest, 100)
				for _, e := range es {
					t.Logf("queued %s created %d", e.EnvelopeID, e.CreatedMs)
				}
				return nil
			})
			t.Fatalf("%s never backed off %d times for %s: %+v", n.domain, attempts, dest, st.Peers)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFederationExpiry: a SUBMIT that cannot reach the hub before the
// configured expiry is taken off the queue and the waiting device is told
// its message failed; nothing is dropped silently.
func TestFederationExpiry(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "expiry@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait)

	b.stop()
	b.cfg.Federation.Outbound.Expiry = 500 * time.Millisecond
	b.cfg.Federation.SendWait = 15 * time.Second
	b.start()
	bob = b.resume(bob, 1)
	a.stop()
	e := bob.call(appMsg(conv, "never-arrives", 1, "x")).GetError()
	if e.GetCode() != wire.Code_CODE_UNAVAILABLE || !strings.Contains(e.GetMessage(), "expired") {
		t.Fatalf("expired send answered %v", e)
	}
	st, err := b.s.FederationList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Peers[0]; p.QueueDepth != 0 || p.Expired != 1 {
		t.Fatalf("after expiry: %+v", p)
	}
	if !strings.Contains(b.logs.String(), "envelope undeliverable, expired") {
		t.Error("expiry not logged")
	}
	// A retry with the same id is a new submission, accepted once the hub is back.
	a.start()
	if ok := sendRetry(t, bob, appMsg(conv, "never-arrives", 1, "x"), fedWait); ok.ConversationSeq != 2 {
		t.Fatalf("resubmission: %v", ok)
	}
}

// TestFederationDeniedDestination: messages for a denied server wait in
// its queue (backing off, never sent) and flow once it is allowed again.
func TestFederationDeniedDestination(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "denied@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait)
	if err := a.s.FederationPolicy(context.Background(), "deny", "b.example"); err != nil {
		t.Fatal(err)
	}
	alice.must(appMsg(conv, "held", 1, "x"))
	waitBackoff(t, a, "b.example", 1, 2)
	bob.noDelivery()
	if err := a.s.FederationPolicy(context.Background(), "allow", "b.example"); err != nil {
		t.Fatal(err)
	}
	if d := collect(t, bob, 1, fedWait)[0]; d.MessageId != "held" {
		t.Fatalf("bob got %v", d)
	}
}
