package homeserver

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestAckWithoutID: the client library acknowledges with frame id 0 (no
// response wanted). Such an Ack must be accepted, made durable, answered
// with nothing, and it must release the delivery window.
func TestAckWithoutID(t *testing.T) {
	h := newHarness(t, Config{DeliveryWindow: 4})
	alice, bob := twoUsers(t, h)
	bob.conn.Close()
	for i := 0; i < 10; i++ {
		alice.must(appMsg(conv, fmt.Sprint("m", i), 1, fmt.Sprint("msg ", i)))
	}
	b := h.connect()
	b.hello(bob.access)
	b.must(syncFrame(0))
	// The window holds 4 entries: acking them with id 0 must let the rest flow.
	got := b.deliveries(4)
	if err := b.fw.WriteMessage(ackFrame(got[3].Seq)); err != nil { // Id stays 0
		t.Fatal(err)
	}
	got = append(got, b.deliveries(4)...)
	if err := b.fw.WriteMessage(ackFrame(got[7].Seq)); err != nil {
		t.Fatal(err)
	}
	got = append(got, b.deliveries(3)...)
	last := got[len(got)-1].Seq
	if err := b.fw.WriteMessage(ackFrame(last)); err != nil {
		t.Fatal(err)
	}
	// No answer to an id-0 Ack: the next frame is the ping's answer, and no error push.
	b.noDelivery()

	// Durable: the stored ack position reaches the last sequence (the
	// id-0 Ack is committed asynchronously; the deadline is a hang guard)...
	var acked uint64
	for deadline := time.Now().Add(wait); acked != last; time.Sleep(10 * time.Millisecond) {
		if err := h.db.Read(t.Context(), func(tx *storage.Tx) (err error) {
			_, acked, err = tx.MailboxState(bob.device)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored ack %d, want %d", acked, last)
		}
	}
	// ...and nothing acknowledged is delivered again after a restart.
	b.conn.Close()
	h.restart()
	b2 := h.connect()
	b2.hello(bob.access)
	b2.must(syncFrame(0))
	b2.noDelivery()
	// Any other request without an id is still refused.
	if err := b2.fw.WriteMessage(ping()); err != nil {
		t.Fatal(err)
	}
	f := b2.push()
	for i := 0; i < 4 && f.GetPresenceList() != nil; i++ {
		f = b2.push() // an active session is told its contacts' presence
	}
	if e := f.GetError(); e.GetCode() != wire.Code_CODE_BAD_REQUEST {
		t.Fatalf("ping without id: got %v", f)
	}
}

// TestAckMovesWindowBeforeCommit: the delivery window moves as soon as an
// Ack is read, not after its commit, so that a draining receiver does not
// wait for an fsync per window; the Ack is still durable (and answered)
// only after its commit. Here the writer is held by another write while
// the Ack arrives: the next entries come anyway, the answer does not.
func TestAckMovesWindowBeforeCommit(t *testing.T) {
	h := newHarness(t, Config{DeliveryWindow: 4})
	alice, bob := twoUsers(t, h)
	bob.conn.Close()
	for i := 0; i < 8; i++ {
		alice.must(appMsg(conv, fmt.Sprint("m", i), 1, fmt.Sprint("msg ", i)))
	}
	b := h.connect()
	b.hello(bob.access)
	b.must(syncFrame(0))
	got := b.deliveries(4)
	b.noDelivery() // the window is full

	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the harness closes the server, also on failure
	held := make(chan struct{})
	go h.db.Write(t.Context(), func(*storage.Tx) error { close(held); <-release; return nil })
	<-held
	answer := b.start(ackFrame(got[3].Seq)) // with an id: answered after the commit
	next := b.deliveries(4)                 // while the writer is still held
	if next[0].Seq != got[3].Seq+1 || next[3].Seq != got[3].Seq+4 {
		t.Fatalf("after the ack of %d: seqs %d..%d", got[3].Seq, next[0].Seq, next[3].Seq)
	}
	var acked uint64
	if err := h.db.Read(t.Context(), func(tx *storage.Tx) (err error) { _, acked, err = tx.MailboxState(bob.device); return err }); err != nil {
		t.Fatal(err)
	}
	if acked != 0 {
		t.Fatalf("stored ack %d before its commit could run", acked)
	}
	select {
	case f := <-answer:
		t.Fatalf("the Ack was answered before its commit: %v", f)
	case <-time.After(50 * time.Millisecond):
	}
	free()
	if f := b.await(answer); f.GetOk() == nil {
		t.Fatalf("ack answer: %v", f)
	}
	if err := h.db.Read(t.Context(), func(tx *storage.Tx) (err error) { _, acked, err = tx.MailboxState(bob.device); return err }); err != nil {
		t.Fatal(err)
	}
	if acked != got[3].Seq {
		t.Fatalf("stored ack %d after the commit, want %d", acked, got[3].Seq)
	}
}
