package client_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
)

// TestHistoryLargeGroup: alice's first device is in a group of n users
// (n = 16; HEARTH_GROUP_BENCH_N=1024 for the full size, as the large-group
// benchmark) with history in it. A device she links with history holds
// that group's history, the same message ids in the same order, before it
// received anything; it is then in the group (her first device added it):
// it receives what a member sends after the link, and what it sends
// reaches that member. The server's member limit is n+1 devices (alice's
// two devices and one per other member).
//
//	HEARTH_GROUP_BENCH_N=1024 go test ./client -run TestHistoryLargeGroup -timeout 60m -v
func TestHistoryLargeGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("over 2 s: not in the -short loop")
	}
	n := 16
	if v, err := strconv.Atoi(os.Getenv("HEARTH_GROUP_BENCH_N")); err == nil && v > 2 {
		n = v
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("%v: "+format, append([]any{time.Since(start).Round(time.Millisecond)}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	const pw = "pw-history-large"
	ts := client.NewTestServerMaxMembers(t, "a.example", n+1)
	users := make([]string, n)
	clients := make([]*client.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			users[i] = ts.AddUser(t, fmt.Sprintf("u%04d", i), pw)
			c, err := client.Open(client.Config{Profile: t.TempDir(), Dial: ts.Dial(), Groups: mlsgroup.New(),
				MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			if err == nil {
				_, err = c.Login(ctx, client.LoginParams{User: users[i], Password: pw, Server: "pipe", DeviceName: "t"})
			}
			if err == nil { // publishes KeyPackages
				err = c.Receive(ctx, time.Millisecond, func(store.Message) error { return nil })
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", users[i], err)
			}
			if i < 2 {
				clients[i] = c
				t.Cleanup(func() { c.Close() })
			} else if c != nil {
				c.Close() // a member that only needs its KeyPackages on the server
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logf("%d users logged in with KeyPackages", n)
	a1 := &dev{t: t, c: clients[0], user: users[0]}
	bob := &dev{t: t, c: clients[1], user: users[1]}
	gid, err := a1.c.Groups().Create(ctx, "large", users[1:])
	if err != nil {
		t.Fatal(err)
	}
	if gi := (&dev{t: t, c: clients[0], user: users[0]}).info(gid); len(gi.Devices) != n || len(gi.Members) != n {
		t.Fatalf("the group has %d devices, want %d", len(gi.Devices), n)
	}
	logf("group of %d created", n)
	flush := func(d *dev, text string) {
		t.Helper()
		id, err := d.c.Queue(gid, text)
		if err == nil {
			err = d.c.Flush(ctx, id)
		}
		if err != nil {
			t.Fatalf("%s sends %q: %v", d.user, text, err)
		}
	}
	until := func(d *dev, text string) {
		t.Helper()
		var got []string
		for !slices.Contains(got, text) && ctx.Err() == nil {
			if err := d.c.Receive(ctx, 500*time.Millisecond, func(m store.Message) error { got = append(got, m.Text); return nil }); err != nil {
				t.Fatalf("%s receives: %v", d.user, err)
			}
		}
		if !slices.Contains(got, text) {
			t.Fatalf("%s did not receive %q (got %q)", d.user, text, got)
		}
	}
	flush(a1, "before the link, from alice")
	until(bob, "before the link, from alice")
	flush(bob, "before the link, from bob")
	until(a1, "before the link, from bob")
	want := a1.historyIDs(gid)
	if len(want) < 2 {
		t.Fatalf("alice's history of the group: %v", want)
	}
	logf("history of the group on alice's first device: %d messages and events", len(want))

	a2 := newDev(t, ts, users[0])
	res := a2.login(pw)
	var mu sync.Mutex
	var newSide, oldSide []string
	a2.c.OnHistoryProgress(func(s string) { mu.Lock(); newSide = append(newSide, s); mu.Unlock() })
	done := make(chan error, 1)
	go func() { done <- a2.c.WaitApproval(ctx, 10*time.Millisecond) }()
	if _, err := a1.c.ApproveWithHistory(ctx, res.LinkCode, nil, &client.HistoryOptions{Days: 90,
		Progress: func(s string) { mu.Lock(); oldSide = append(oldSide, s); mu.Unlock() }}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	logf("second device linked with history")
	if got := a2.historyIDs(gid); !slices.Equal(got, want) {
		t.Fatalf("the new device's history of the group: %d entries %v, want %d %v", len(got), got, len(want), want)
	}
	mu.Lock()
	if j := strings.Join(oldSide, "|"); !strings.Contains(j, "history: uploaded 100%") {
		t.Errorf("approver's progress %q", oldSide)
	}
	if j := strings.Join(newSide, "|"); !strings.Contains(j, fmt.Sprintf("history: imported %d messages of 1 conversation", len(want))) {
		t.Errorf("new device's progress %q", newSide)
	}
	mu.Unlock()

	flush(bob, "after the link, from bob")
	until(a2, "after the link, from bob")
	flush(a2, "from alice's new device")
	until(bob, "from alice's new device")
	if gi := a2.info(gid); len(gi.Devices) != n+1 || gi.Name != "large" {
		t.Errorf("the new device sees the group %q with %d devices, want large with %d", gi.Name, len(gi.Devices), n+1)
	}
	logf("the new device follows the group")
	if got := a2.historyIDs(gid); len(got) <= len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("the new device's history after the link does not start with the imported one: %v", got)
	}
}
