package delivery

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestPusherRunsOnWorkers: a pusher's pass, which writes to the session's
// stream, runs on a workers goroutine (see TestQueueRunsOnWorkers).
func TestPusherRunsOnWorkers(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	router := NewLocalRouter()
	e := New(Config{Window: 8}, db, router, nil)
	stacks := make(chan string, 4)
	p := e.NewPusher(context.Background(), "d1", 0, func([]*wire.ServerFrame) error {
		buf := make([]byte, 64<<10)
		stacks <- string(buf[:runtime.Stack(buf, false)])
		return nil
	}, func() {})
	t.Cleanup(p.Stop)
	p.Start()
	router.NotifyEntry("d1", 1, &storage.Entry{ConvID: "c@x", ConvSeq: 1, Sender: "u@x/a", MessageID: "m1", Payload: []byte("p")})
	select {
	case s := <-stacks:
		if !strings.Contains(s, "hearth/homeserver/workers.loop") {
			t.Fatalf("the pusher's pass is not on a workers goroutine:\n%s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing pushed within 10 s")
	}
}
