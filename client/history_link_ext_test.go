package client_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/client"
)

// TestApproveWithHistory: a device approved with history holds the
// approver's history of the conversation (by peer, the same message ids)
// before it received anything, and both sides report progress.
func TestApproveWithHistory(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a1, a2, b1 := newDev(t, ts, A), newDev(t, ts, A), newDev(t, ts, B)
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "hello bob")
	b1.recv(A + ":hello bob")
	b1.send(A, "hi alice")
	a1.recv(B + ":hi alice")
	want := a1.historyIDs(B)
	if len(want) < 2 {
		t.Fatalf("alice's history %v", want)
	}

	res := a2.login(pw)
	var mu sync.Mutex
	var newSide []string
	a2.c.OnHistoryProgress(func(s string) { mu.Lock(); newSide = append(newSide, s); mu.Unlock() })
	done := make(chan error, 1)
	go func() { done <- a2.c.WaitApproval(ctx30(t), 10*time.Millisecond) }()
	var oldSide []string
	var shown client.PendingDevice
	id, err := a1.c.ApproveWithHistory(ctx30(t), res.LinkCode, func(p client.PendingDevice) error { shown = p; return nil },
		&client.HistoryOptions{Days: 90, Progress: func(s string) { oldSide = append(oldSide, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fp, err := a2.c.Fingerprint()
	if err != nil || id != res.DeviceID || shown.ID != id || shown.Fingerprint != fp || shown.Name != "t" {
		t.Errorf("approved %s, shown %+v, new device's fingerprint %q (%v)", id, shown, fp, err)
	}
	if got := a2.historyIDs(B); !slices.Equal(got, want) {
		t.Errorf("new device's history %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if j := strings.Join(oldSide, "|"); !strings.Contains(j, "history: uploaded 100%") || !strings.Contains(j, "history: 2 messages of 1 conversation; encrypting") {
		t.Errorf("approver's progress %q", oldSide)
	}
	if j := strings.Join(newSide, "|"); !strings.Contains(j, "history: downloaded 100%") || !strings.Contains(j, "history: imported 2 messages of 1 conversation") {
		t.Errorf("new device's progress %q", newSide)
	}
}
