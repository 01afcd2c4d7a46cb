package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/e2ee"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// groupBenchDevices logs in n users with one device each (4 at a time)
// and has each publish its KeyPackages; the devices stay connected.
func groupBenchDevices(b *testing.B, ts *client.TestServer, eng func() e2ee.Engine, n int) []*client.Client {
	b.Helper()
	devs := make([]*client.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			user := ts.AddUser(b, fmt.Sprintf("m%04d", i), "pw-bench")
			c, err := client.Open(client.Config{Profile: b.TempDir(), Dial: ts.Dial(), Groups: eng(),
				MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			if err != nil {
				errs <- err
				return
			}
			b.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if _, err := c.Login(ctx, client.LoginParams{User: user, Password: "pw-bench", Server: "pipe", DeviceName: "b"}); err != nil {
				errs <- err
				return
			}
			if err := c.Receive(ctx, time.Millisecond, func(store.Message) error { return nil }); err != nil {
				errs <- err
				return
			}
			devs[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return devs
}

// groupBenchN is HEARTH_GROUP_BENCH_N, or def.
func groupBenchN(def int) int {
	if v, err := strconv.Atoi(os.Getenv("HEARTH_GROUP_BENCH_N")); err == nil && v > 1 {
		return v
	}
	return def
}

// BenchmarkGroupCreate1024: the creator's time alone to create a group of
// 1,024 users (one device each): fetching the members' device lists and
// KeyPackages, the commits of up to 256 adds, the hub's verification of
// each, the Welcomes. The other devices published their KeyPackages and
// are offline (closed), so that their processing of Welcomes and commits
// does not share the two cores with the creator as in
// BenchmarkGroupFanout1024. One op = one group created (b.N groups of the
// same members: KeyPackages run out into the last-resort ones).
// HEARTH_GROUP_BENCH_N changes the size; the setup (logins) takes about
// 30 s at 1,024:
//
//	go test ./client -run '^$' -bench GroupCreate1024 -benchtime 1x -timeout 20m
func BenchmarkGroupCreate1024(b *testing.B) {
	n := groupBenchN(1024)
	ts := client.NewTestServerMaxMembers(b, "a.example", n)
	start := time.Now()
	devs := groupBenchDevices(b, ts, mlsgroup.New, n)
	for _, c := range devs[1:] {
		c.Close() // offline: their deliveries wait in their mailboxes
	}
	fmt.Fprintf(os.Stderr, "bench: %d devices logged in with KeyPackages in %v\n", n, time.Since(start))
	var members []string
	for i := 1; i < n; i++ {
		members = append(members, fmt.Sprintf("m%04d@a.example", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := devs[0].Groups().Create(ctx, fmt.Sprint("big ", i), members); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "bench: group %d of %d members created in %v\n", i, n, time.Since(t0))
	}
}

// BenchmarkGroupFanout1024: a group of 1,024 member devices (1,024 users
// with one device each, all on one in-process server, real MLS, real
// SQLite), every device online and receiving; one op = one message from
// the creator until the last device has decrypted it. It reports
// ms-to-last-device. HEARTH_GROUP_BENCH_N changes the size.
// Setup (logins, four commits of 256 adds, 1,023 Welcomes) takes
// minutes: run with -benchtime 1x.
func BenchmarkGroupFanout1024(b *testing.B) {
	n := groupBenchN(1024)
	// Setup takes minutes at n = 1,024: each step is also written to
	// stderr as it ends (b.Logf shows only when the benchmark is over).
	logf := func(format string, args ...any) {
		b.Helper()
		b.Logf(format, args...)
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
	// The default suite (0xF001, ML-KEM-768+X25519) under the default
	// server limits: the creator adds 256 users per commit, Welcomes
	// carry no ratchet tree and each joiner takes it from the GroupInfo
	// delivered with its Welcome (docs/decisions/0004-large-groups.md).
	eng := mlsgroup.New
	ts := client.NewTestServerMaxMembers(b, "a.example", n)
	start := time.Now()
	devs := groupBenchDevices(b, ts, eng, n)
	logf("%d devices logged in with KeyPackages in %v", n, time.Since(start))
	var members []string
	for i := 1; i < n; i++ {
		members = append(members, fmt.Sprintf("m%04d@a.example", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t0 := time.Now()
	gid, err := devs[0].Groups().Create(ctx, "big", members)
	if err != nil {
		b.Fatal(err)
	}
	logf("group of %d created (commits of up to 256 adds, Welcomes) in %v", n, time.Since(t0))

	// Every other device online: receiving pushes, signalling each message.
	got := make(chan string, n*4)
	rctx, rcancel := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	var recvErrs atomic.Int64
	t0 = time.Now()
	for _, c := range devs[1:] {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			// Receive gives up when it cannot connect within its wait
			// (1,023 sessions connect at once on a loaded machine): go on.
			for rctx.Err() == nil {
				err := c.Receive(rctx, 0, func(m store.Message) error {
					if m.Event == "" && m.Conversation == gid {
						got <- m.Text
					}
					return nil
				})
				if err != nil && rctx.Err() == nil {
					recvErrs.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	// Wait until every device joined (processed its Welcome and the
	// group's state message): a warm-up message reaches all.
	send := func(text string) time.Duration {
		t := time.Now()
		id, err := devs[0].Queue(gid, text)
		if err == nil {
			err = devs[0].Flush(ctx, id)
		}
		if err != nil {
			b.Fatal(err)
		}
		for k := 0; k < n-1; {
			select {
			case m := <-got:
				if m == text {
					k++
				}
			case <-ctx.Done():
				b.Fatalf("%s reached %d of %d devices", text, k, n-1)
			}
		}
		return time.Since(t)
	}
	send("warm-up")
	logf("all %d devices joined and online in %v (%d receive restarts)", n-1, time.Since(t0), recvErrs.Load())
	// A send first checks the group's roster against the members' device
	// lists when the last check is older than 30 s (FetchDeviceLists, 256
	// users per request). Do that check now, untimed, so that the timed
	// sends measure the fan-out.
	t0 = time.Now()
	if err := devs[0].CheckRoster(ctx, gid); err != nil {
		b.Fatal(err)
	}
	logf("roster check before the timed send: %v", time.Since(t0))
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += send(fmt.Sprintf("message %d", i))
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-last-device")
	rcancel()
	rwg.Wait()
}
