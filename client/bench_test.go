package client_test

import (
	"context"
	"fmt"
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
	b.Helper()
	user := ts.AddUser(b, name, "pw-bench")
	c, err := client.Open(client.Config{Profile: b.TempDir(), Dial: ts.Dial(), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
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
	b.ResetTimer()
	for range b.N {
		benchSend(b, alice, bob, 1)
	}
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
	b.ResetTimer()
	benchReceive(b, bob, b.N)
}
