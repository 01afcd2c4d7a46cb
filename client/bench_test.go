package client_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// Benchmarks of the client's 1:1 hot paths against the in-process
// homeserver (real SQLite in a temp dir, real MLS on the default suite).
// Run with TMPDIR=/dev/shm to keep fsyncs out of the client figures, e.g.
//
//	TMPDIR=/dev/shm go test ./client -run '^$' -bench 'Send|Receive' -benchtime 500x

func benchDev(b *testing.B, ts *client.TestServer, name string) *client.Client {
	return benchDevWith(b, ts, name, client.Config{})
}

// benchDevWith is benchDev with cfg's options (profile, dial and groups
// are set here).
func benchDevWith(b *testing.B, ts *client.TestServer, name string, cfg client.Config) *client.Client {
	b.Helper()
	user := ts.AddUser(b, name, "pw-bench")
	cfg.Profile, cfg.Dial, cfg.Groups = b.TempDir(), ts.Dial(), mlsgroup.New()
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	c, err := client.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Login(ctx, client.LoginParams{User: user, Password: "pw-bench", Server: "pipe", DeviceName: "b"}); err != nil {
		b.Fatal(err)
	}
	return c
}

// benchPair returns two logged-in devices whose conversation exists.
func benchPair(b *testing.B) (ts *client.TestServer, alice, bob *client.Client, bobUser string) {
	ts = client.NewBenchServer(b, "a.example")
	alice, bob = benchDev(b, ts, "alice"), benchDev(b, ts, "bob")
	a, _ := bob.Account()
	benchSend(b, alice, a.User, 1)
	benchReceive(b, bob, 1)
	return ts, alice, bob, a.User
}

// benchSend queues n messages to user and flushes them.
func benchSend(b *testing.B, c *client.Client, user string, n int) {
	b.Helper()
	var last string
	for i := range n {
		id, err := c.Queue(user, fmt.Sprint("benchmark message ", i))
		if err != nil {
			b.Fatal(err)
		}
		last = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Flush(ctx, last); err != nil {
		b.Fatal(err)
	}
}

// benchReceive runs Receive until n messages were printed.
func benchReceive(b *testing.B, c *client.Client, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got := 0
	err := c.Receive(ctx, 0, func(m store.Message) error {
		if m.Event == "" {
			if got++; got == n {
				cancel()
			}
		}
		return nil
	})
	if got != n {
		b.Fatalf("received %d of %d: %v", got, n, err)
	}
}

// BenchmarkSendMessage: one message queued and flushed until the hub
// accepted it (encrypt, store, Send, SendOK, history), one at a time.
func BenchmarkSendMessage(b *testing.B) {
	_, alice, _, bob := benchPair(b)
	before, cpu := alice.StoreCommits(), cpuTime(b)
	b.ResetTimer()
	for range b.N {
		benchSend(b, alice, bob, 1)
	}
	b.StopTimer()
	reportCPU(b, cpu)
	reportFsyncs(b, alice, before, "send")
}

// BenchmarkSendPipelined: b.N messages queued round robin to 8 users (8
// conversations), then one Flush: windows of one Send per conversation in
// flight. ns/op is per message.
func BenchmarkSendPipelined(b *testing.B) {
	ts, alice, bob, bobUser := benchPair(b)
	users := []string{bobUser}
	for i := range 7 {
		c := benchDev(b, ts, fmt.Sprint("peer", i))
		a, _ := c.Account()
		benchSend(b, alice, a.User, 1)
		users = append(users, a.User)
	}
	_ = bob
	b.ResetTimer()
	var last string
	for i := range b.N {
		id, err := alice.Queue(users[i%len(users)], fmt.Sprint("benchmark message ", i))
		if err != nil {
			b.Fatal(err)
		}
		last = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := alice.Flush(ctx, last); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReceiveMessage: b.N messages wait in the mailbox; one Receive
// decrypts, stores, acknowledges and prints them all. ns/op is per message.
func BenchmarkReceiveMessage(b *testing.B) {
	_, alice, bob, _ := benchPair(b)
	bobAcct, _ := bob.Account()
	bob.Close() // offline while the backlog builds up
	benchSend(b, alice, bobAcct.User, b.N)
	before, cpu := bob.StoreCommits(), cpuTime(b)
	b.ResetTimer()
	benchReceive(b, bob, b.N)
	b.StopTimer()
	reportCPU(b, cpu)
	reportFsyncs(b, bob, before, "recv")
}

// cpuTime returns the CPU time (user and system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time since before per op, in
// microseconds: both clients and the in-process server.
func reportCPU(b *testing.B, before time.Duration) {
	b.ReportMetric(float64((cpuTime(b)-before).Microseconds())/float64(b.N), "cpu-µs/op")
}

// reportFsyncs reports the store commits of c since before per message
// as name-commits/op and name-fsyncs/op (bbolt syncs twice per commit: the
// data pages, then the meta page).
func reportFsyncs(b *testing.B, c *client.Client, before uint64, name string) {
	n := float64(c.StoreCommits() - before)
	b.ReportMetric(n/float64(b.N), name+"-commits/op")
	b.ReportMetric(2*n/float64(b.N), name+"-fsyncs/op")
}

// reportPages reports the pages c's store wrote since before (its
// commits since commits) per commit, as name-pages/commit: every page a
// commit rewrites (bbolt's meta and freelist pages included) is a write
// of its own.
func reportPages(b *testing.B, c *client.Client, commits uint64, before int64, name string) {
	if n := c.StoreCommits() - commits; n > 0 {
		b.ReportMetric(float64(c.StorePages()-before)/float64(n), name+"-pages/commit")
	}
}

// BenchmarkMessageRoundTrip: one message at a time from alice to bob, as
// `hearth bench pairs` runs them (no delivery receipts): alice queues and
// flushes it until the hub accepted it, bob's running Receive decrypts,
// stores, acknowledges and prints it; the next message goes when bob
// printed this one. ns/op is the wall time per message of both clients and
// the in-process server; send- and recv-fsyncs/op count each client's
// store commits (the durable transactions per message on each side);
// cpu-µs/op is the CPU time of the whole process (both clients and the
// server) per message; send- and recv-pages/commit the pages each store's
// commits wrote.
//
//	go test ./client -run '^$' -bench MessageRoundTrip -benchmem -benchtime 300x
func BenchmarkMessageRoundTrip(b *testing.B) {
	ts := client.NewBenchServer(b, "a.example")
	cfg := client.Config{NoDeliveryReceipts: true}
	alice, bob := benchDevWith(b, ts, "alice", cfg), benchDevWith(b, ts, "bob", cfg)
	ba, _ := bob.Account()
	benchSend(b, alice, ba.User, 1)
	benchReceive(b, bob, 1)

	ctx, cancel := context.WithCancel(context.Background())
	printed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- bob.Receive(ctx, 0, func(m store.Message) error {
			if m.Event == "" {
				printed <- struct{}{}
			}
			return nil
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	wait := func() {
		select {
		case <-printed:
		case err := <-done:
			b.Fatalf("Receive ended: %v", err)
		case <-time.After(time.Minute):
			b.Fatal("bob printed nothing for a minute")
		}
	}
	benchSend(b, alice, ba.User, 1) // Receive is running and caught up
	wait()
	sendBefore, recvBefore := alice.StoreCommits(), bob.StoreCommits()
	sendPeeks, recvPeeks := alice.StorePeeks(), bob.StorePeeks()
	sendPages, recvPages := alice.StorePages(), bob.StorePages()
	cpu := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		benchSend(b, alice, ba.User, 1)
		wait()
	}
	b.StopTimer()
	reportCPU(b, cpu)
	reportFsyncs(b, alice, sendBefore, "send")
	reportFsyncs(b, bob, recvBefore, "recv")
	b.ReportMetric(float64(alice.StorePeeks()-sendPeeks)/float64(b.N), "send-peeks/op")
	b.ReportMetric(float64(bob.StorePeeks()-recvPeeks)/float64(b.N), "recv-peeks/op")
	reportPages(b, alice, sendBefore, sendPages, "send")
	reportPages(b, bob, recvBefore, recvPages, "recv")
}
