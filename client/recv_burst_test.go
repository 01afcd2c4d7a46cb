package client_test

import (
	"fmt"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/store"
)

// TestReceiveBurstOver100: more than 100 messages waiting are all printed
// by one Receive (the inbox is drained 100 at a time until empty).
func TestReceiveBurstOver100(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "rx", "tx")
	rx, tx := us[0], us[1]
	var last string
	for i := range 150 {
		if last, _ = tx.c.Queue(rx.user, fmt.Sprint("m", i)); last == "" {
			t.Fatal("queue failed")
		}
	}
	if err := tx.c.Flush(ctx30(t), last); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := rx.c.Receive(ctx30(t), 500*time.Millisecond, func(m store.Message) error {
		if m.Event == "" {
			n++
		}
		return nil
	})
	if err != nil || n != 150 {
		t.Fatalf("one Receive printed %d of 150 (%v)", n, err)
	}
}
