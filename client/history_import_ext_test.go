package client_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/homeserver"
)

// freezer holds the reads of the connections it wraps while frozen, as a
// server that stopped answering would.
type freezer struct {
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen {
		f.frozen, f.thaw = true, make(chan struct{})
	}
}

func (f *freezer) unfreeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		f.frozen = false
		close(f.thaw)
	}
}

func (f *freezer) wait() {
	f.mu.Lock()
	ch, frozen := f.thaw, f.frozen
	f.mu.Unlock()
	if frozen {
		<-ch
	}
}

type frozenConn struct {
	io.ReadWriteCloser
	f *freezer
}

func (c frozenConn) Read(b []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(b)
	c.f.wait()
	return n, err
}

// TestHistoryImportStalledThenResumed: the server stops answering the
// new device as its history download starts. The attempt ends after the
// stall time; the device is active, WaitApproval says the history is
// pending, and the record counts the attempt, its cause and the backoff.
// Before the backoff passed neither ResumeHistory nor FollowHistory
// tries; after it, with the server answering again, FollowHistory imports
// the archive, which ends the record, and returns; the history is the
// approver's, each message once.
func TestHistoryImportStalledThenResumed(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")
	b1.send(A, "hi alice")
	a1.recv(B + ":hi alice")
	want := a1.historyIDs(B)

	var fz freezer
	t.Cleanup(fz.unfreeze)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	dial := ts.Dial()
	c, err := client.Open(client.Config{Profile: t.TempDir(), Groups: mlsgroup.New(), Now: now, HistoryStall: 300 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Dial: func(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
			rw, err := dial(ctx, addr, ca)
			if err != nil {
				return nil, err
			}
			return frozenConn{rw, &fz}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a2 := &dev{t: t, c: c, user: A}
	res := a2.login(pw)
	var progress []string
	var mu sync.Mutex
	c.OnHistoryProgress(func(s string) {
		mu.Lock()
		progress = append(progress, s)
		mu.Unlock()
		if strings.HasPrefix(s, "history: downloading") {
			fz.freeze()
		}
	})
	done := make(chan error, 1)
	go func() { done <- c.WaitApproval(ctx30(t), 10*time.Millisecond) }()
	if _, err := a1.c.ApproveWithHistory(ctx30(t), res.LinkCode, nil, &client.HistoryOptions{Days: 90}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, client.ErrHistoryPending) {
		t.Fatalf("WaitApproval: %v, want ErrHistoryPending", err)
	}
	if a, err := c.Account(); err != nil || !a.Active {
		t.Fatalf("not active after the approval: %+v, %v", a, err)
	}
	p, ok := c.PendingHistory()
	if !ok || p.Attempts != 1 || !strings.Contains(p.LastError, "no progress") || p.NextAt.Sub(now()) < 4*time.Second ||
		p.Expires.Sub(now()) < 29*24*time.Hour {
		t.Fatalf("pending import %+v (%v)", p, ok)
	}
	if got := a2.historyIDs(B); len(got) != 0 {
		t.Fatalf("history before the import: %v", got)
	}
	if tried, err := c.ResumeHistory(ctx30(t)); tried || err != nil {
		t.Fatalf("ResumeHistory before the backoff passed: tried %v, %v", tried, err)
	}
	fz.unfreeze()
	c.OnHistoryProgress(func(s string) { mu.Lock(); progress = append(progress, s); mu.Unlock() })
	// FollowHistory sleeps until the attempt is due: within 200 ms it
	// tries nothing; once the backoff passed it imports and returns.
	var outcomes []error
	short, cancel := context.WithTimeout(ctx30(t), 200*time.Millisecond)
	c.FollowHistory(short, func(err error) { outcomes = append(outcomes, err) })
	cancel()
	if len(outcomes) != 0 {
		t.Fatalf("FollowHistory tried before the backoff passed: %v", outcomes)
	}
	skew.Store(int64(6 * time.Second))
	// An attempt cut off by the command's own deadline or Ctrl-C is not a
	// failed attempt: no longer wait, due again at once.
	fz.freeze()
	cut, cutNow := context.WithTimeout(ctx30(t), 100*time.Millisecond) // under the 300 ms stall time
	tried, err := c.ResumeHistory(cut)
	cutNow()
	fz.unfreeze()
	if !tried || err == nil {
		t.Fatalf("ResumeHistory cut off by its deadline: tried %v, %v", tried, err)
	}
	if p, ok := c.PendingHistory(); !ok || p.Attempts != 1 || p.NextAt.After(now()) || p.LastError != "the command's time ran out" {
		t.Fatalf("an attempt cut off by the command counted as a failure: %+v (%v)", p, ok)
	}
	c.FollowHistory(ctx30(t), func(err error) { outcomes = append(outcomes, err) })
	if len(outcomes) != 1 || outcomes[0] != nil {
		t.Fatalf("FollowHistory after the backoff: outcomes %v", outcomes)
	}
	if got := a2.historyIDs(B); !slices.Equal(got, want) {
		t.Errorf("history after the retry %v, want %v", got, want)
	}
	if p, ok := c.PendingHistory(); ok {
		t.Errorf("still pending after the import: %+v", p)
	}
	if tried, err := c.ResumeHistory(ctx30(t)); tried || err != nil {
		t.Errorf("ResumeHistory with nothing pending: tried %v, %v", tried, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if j := strings.Join(progress, "|"); !strings.Contains(j, "history: importing the history the approving device sent (attempt 2)") ||
		!strings.Contains(j, "history: imported 2 messages of 1 conversation") {
		t.Errorf("progress %q", progress)
	}
}

// TestHistoryArchiveOverMediaLimit: an archive larger than the server's
// media limit makes the approval fail with its size and what to do
// (approved nothing: the device stays pending); --no-history's approval
// (nil options) then works.
func TestHistoryArchiveOverMediaLimit(t *testing.T) {
	ts := client.NewTestServerMedia(t, "a.example", homeserver.MediaConfig{MaxBytes: 100_000})
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, b1 := newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	for i := range 3 {
		a1.send(B, strings.Repeat("a long message to keep. ", 2000)+string(rune('a'+i)))
	}
	a2 := newDev(t, ts, A)
	res := a2.login(pw)
	_, err := a1.c.ApproveWithHistory(ctx30(t), res.LinkCode, nil, &client.HistoryOptions{Days: 90})
	if err == nil || !strings.Contains(err.Error(), "the history archive (3 messages of 1 conversation,") ||
		!strings.Contains(err.Error(), "over the server's media limit") || !strings.Contains(err.Error(), "--no-history") {
		t.Fatalf("approval with an archive over the limit: %v", err)
	}
	devs, err := a1.c.Devices(ctx30(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == res.DeviceID && d.Status != "pending" {
			t.Fatalf("the refused approval left the device %s", d.Status)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a2.c.WaitApproval(ctx30(t), 10*time.Millisecond) }()
	if _, err := a1.c.ApproveWithHistory(ctx30(t), res.LinkCode, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := a2.c.PendingHistory(); ok {
		t.Error("a device approved without history has an import pending")
	}
}
