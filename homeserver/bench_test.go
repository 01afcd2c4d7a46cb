package homeserver

import (
	"context"
	"fmt"
	"testing"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// bigGroup creates a conversation with the creator plus n-1 other active
// devices of one user (inserted directly: logging 1,023 devices in would
// only measure argon2id) and returns the creator's client.
func bigGroup(t testing.TB, h *harness, n int) *client {
	t.Helper()
	c, _ := h.firstDevice("big")
	createConv(c, conv)
	var adds []string
	err := h.db.Write(context.Background(), func(tx *storage.Tx) error {
		u, err := tx.UserByName("big")
		if err != nil {
			return err
		}
		for i := 1; i < n; i++ {
			id := fmt.Sprintf("DEV%05d", i)
			if err := tx.InsertDevice(&storage.Device{ID: id, UserID: u.ID, Name: "d", Status: storage.DeviceActive, CreatedMs: 1}, nil); err != nil {
				return err
			}
			adds = append(adds, "big@"+testDomain+"/"+id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok := c.must(commit(conv, "add-all", 0, adds, nil)).GetSendOk(); ok.Epoch != 1 {
		t.Fatal(ok)
	}
	return c
}

// TestFanout1024OneTransaction: one message to a 1,024-device group is one
// write request in one transaction (one fsync), and every device gets it.
func TestFanout1024OneTransaction(t *testing.T) {
	h := newHarness(t, Config{})
	c := bigGroup(t, h, 1024)
	b0, r0 := h.db.WriteStats()
	ok := c.must(appMsg(conv, "to-all", 1, "hello everyone")).GetSendOk()
	b1, r1 := h.db.WriteStats()
	if b1-b0 != 1 || r1-r0 != 1 {
		t.Fatalf("send took %d transactions / %d requests, want 1/1", b1-b0, r1-r0)
	}
	var n int
	err := h.db.Read(context.Background(), func(tx *storage.Tx) error {
		for i := 1; i < 1024; i++ {
			es, err := tx.Entries(fmt.Sprintf("DEV%05d", i), 0, 10)
			if err != nil {
				return err
			}
			// welcome (seq 1), then the message (seq 2)
			if len(es) == 2 && es[1].ConvSeq == ok.ConversationSeq && string(es[1].Payload) == "hello everyone" && es[0].Welcome {
				n++
			}
		}
		return nil
	})
	if err != nil || n != 1023 {
		t.Fatalf("%d of 1023 devices got the message (%v)", n, err)
	}
	c.fails(commit(conv, "one-more", 1, []string{"big@" + testDomain + "/NEWDEVICE"}, nil), wire.Code_CODE_NOT_FOUND)
}

// BenchmarkFanout1024: one op = one application message accepted for a
// 1,024-device group (log + 1,023 mailbox rows, one commit).
func BenchmarkFanout1024(b *testing.B) {
	h := newHarness(b, Config{RateLimit: RateLimit{PerSecond: 1e9, Burst: 1 << 30}})
	h.from = "127.0.0.1:7" // loopback: many logins from one address are not throttled
	c := bigGroup(b, h, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.must(appMsg(conv, fmt.Sprint("m", i), 1, "payload of a chat message"))
	}
	b.ReportMetric(float64(b.N*1023)/b.Elapsed().Seconds(), "mailbox-rows/s")
}

// BenchmarkSendDelivery: alice sends (pipelined, 64 in flight) to bob over
// net.Pipe; one op = one message accepted durably and pushed to bob.
func BenchmarkSendDelivery(b *testing.B) {
	h := newHarness(b, Config{RateLimit: RateLimit{PerSecond: 1e9, Burst: 1 << 30}})
	h.from = "127.0.0.1:7" // loopback: many logins from one address are not throttled
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	createConv(alice, conv)
	alice.must(commit(conv, "c0", 0, []string{bob.addr()}, nil))
	bob.must(syncFrame(0))
	bob.deliveries(1)
	w0 := writerCounts(h)
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		var got uint64
		for i := 0; i < b.N; i++ {
			d := bob.push().GetDelivery()
			if d == nil {
				i--
				continue
			}
			got = d.Seq
			if i%128 == 127 {
				bob.start(ackFrame(got)) // answers are not awaited
			}
		}
		done <- nil
	}()
	inflight := make(chan (<-chan *wire.ServerFrame), 64)
	acked := make(chan error, 1)
	go func() {
		for ch := range inflight {
			if r := alice.await(ch); r.GetSendOk() == nil {
				acked <- fmt.Errorf("send: %v", r)
				return
			}
		}
		acked <- nil
	}()
	for i := 0; i < b.N; i++ {
		inflight <- alice.start(appMsg(conv, fmt.Sprint("m", i), 1, "payload of a chat message"))
	}
	close(inflight)
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(h.pushReads(bob.device))/float64(b.N), "reads/msg") // the pusher's mailbox reads
	reportWrites(b, h, alice.device, bob.device)
	writerCounts(h).sub(w0).report(b)
}

// reportWrites reports the stream writes of the devices' sessions per
// frame they carried (1: no coalescing) and per message.
func reportWrites(b *testing.B, h *harness, devices ...string) {
	var writes, frames uint64
	for _, ss := range h.s.reg.sessionsOfDevices(devices) {
		writes += ss.fw.writes.Load()
		frames += ss.fw.frames.Load()
	}
	b.ReportMetric(float64(writes)/float64(max(frames, 1)), "writes/frame")
	b.ReportMetric(float64(writes)/float64(b.N), "writes/msg")
}

// writerStats are the storage writer's counters (DB.WriteStats,
// DB.WriteStatements).
type writerStats struct{ txs, reqs, stmts uint64 }

func writerCounts(h *harness) writerStats {
	b, r := h.db.WriteStats()
	return writerStats{b, r, h.db.WriteStatements()}
}

func (w writerStats) sub(o writerStats) writerStats {
	return writerStats{w.txs - o.txs, w.reqs - o.reqs, w.stmts - o.stmts}
}

// report adds the writer's transactions and statements per message (the
// acks of the test's receivers included) and requests per transaction.
func (w writerStats) report(b *testing.B) {
	b.ReportMetric(float64(w.txs)/float64(b.N), "tx/msg")
	b.ReportMetric(float64(w.stmts)/float64(b.N), "stmts/msg")
	b.ReportMetric(float64(w.reqs)/float64(max(w.txs, 1)), "reqs/tx")
}

// BenchmarkSendParallel: 16 senders, each in its own two-device
// conversation, pipelining 32 sends; one op = one message accepted
// durably. Shows group commit at the server level (reqs/tx).
func BenchmarkSendParallel(b *testing.B) {
	h := newHarness(b, Config{RateLimit: RateLimit{PerSecond: 1e9, Burst: 1 << 30}})
	h.from = "127.0.0.1:7" // loopback: many logins from one address are not throttled
	const senders = 16
	cs := make([]*client, senders)
	for i := range cs {
		c, _ := h.firstDevice(fmt.Sprint("s", i))
		peer, _ := h.firstDevice(fmt.Sprint("p", i))
		id := fmt.Sprintf("c%d@%s", i, testDomain)
		createConv(c, id)
		c.must(commit(id, "add", 0, []string{peer.addr()}, nil))
		cs[i] = c
	}
	w0 := writerCounts(h)
	b.ResetTimer()
	errs := make(chan error, senders)
	for i, c := range cs {
		go func() {
			id := fmt.Sprintf("c%d@%s", i, testDomain)
			inflight := make([]<-chan *wire.ServerFrame, 0, 32)
			for k := i; k < b.N; k += senders {
				inflight = append(inflight, c.start(appMsg(id, fmt.Sprint("m", k), 1, "payload of a chat message")))
				if len(inflight) == 32 {
					if r := c.await(inflight[0]); r.GetSendOk() == nil {
						errs <- fmt.Errorf("%v", r)
						return
					}
					inflight = inflight[1:]
				}
			}
			for _, ch := range inflight {
				if r := c.await(ch); r.GetSendOk() == nil {
					errs <- fmt.Errorf("%v", r)
					return
				}
			}
			errs <- nil
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	writerCounts(h).sub(w0).report(b)
	devs := make([]string, len(cs))
	for i, c := range cs {
		devs[i] = c.device
	}
	reportWrites(b, h, devs...)
}

// BenchmarkBacklogDrain: b.N messages wait in bob's mailbox (stored before
// the timer starts); bob syncs and acknowledges every 64 deliveries as the
// client library does (id 0, not awaited); one op = one message of the
// drain pushed to bob.
func BenchmarkBacklogDrain(b *testing.B) {
	h := newHarness(b, Config{RateLimit: RateLimit{PerSecond: 1e9, Burst: 1 << 30}})
	h.from = "127.0.0.1:7" // loopback: many logins from one address are not throttled
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	createConv(alice, conv)
	alice.must(commit(conv, "c0", 0, []string{bob.addr()}, nil))
	inflight := make([]<-chan *wire.ServerFrame, 0, 64)
	for i := 0; i < b.N; i++ {
		inflight = append(inflight, alice.start(appMsg(conv, fmt.Sprint("m", i), 1, "payload of a chat message")))
		if len(inflight) == cap(inflight) || i == b.N-1 {
			for _, ch := range inflight {
				if r := alice.await(ch); r.GetSendOk() == nil {
					b.Fatalf("send: %v", r)
				}
			}
			inflight = inflight[:0]
		}
	}
	b.ResetTimer()
	bob.must(syncFrame(0))
	bob.deliveries(1) // the welcome
	for i := 0; i < b.N; i++ {
		d := bob.push().GetDelivery()
		if d == nil {
			i--
			continue
		}
		if i%64 == 63 || i == b.N-1 {
			if err := bob.fw.WriteMessage(ackFrame(d.Seq)); err != nil { // id 0: no answer
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	reportWrites(b, h, bob.device)
}
