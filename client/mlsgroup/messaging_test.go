package mlsgroup_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/homeserver"
	"hearth/storage"
)

// server is the real homeserver with real SQLite, served over net.Pipe.
type server struct {
	srv   *homeserver.Server
	ctx   context.Context
	mu    sync.Mutex
	conns []net.Conn
}

func newServer(t *testing.T) *server {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "server.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	srv, err := homeserver.New(homeserver.Config{Domain: "a.example", RetentionInterval: -1,
		Password: homeserver.PasswordParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}},
		homeserver.Deps{DB: db, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Close(); db.Close() })
	return &server{srv: srv, ctx: ctx}
}

func (s *server) dial(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
	a, b := net.Pipe()
	s.mu.Lock()
	s.conns = append(s.conns, a)
	s.mu.Unlock()
	go s.srv.ServeStream(s.ctx, b, "pipe")
	return a, nil
}

func (s *server) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// device is one profile; reopen simulates the process exiting and a new run.
type device struct {
	t       *testing.T
	s       *server
	dir     string
	c       *client.Client
	address string
}

func (s *server) device(t *testing.T, user string) *device {
	t.Helper()
	if _, err := s.srv.UserAdd(context.Background(), user, []byte("pw-"+user+"-long"), false); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	d := &device{t: t, s: s, dir: t.TempDir(), address: user + "@a.example"}
	d.reopen()
	t.Cleanup(func() { d.c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.c.Login(ctx, client.LoginParams{User: d.address, Password: "pw-" + user + "-long", Server: "pipe"}); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return d
}

func (d *device) reopen() {
	d.t.Helper()
	if d.c != nil {
		d.c.Close()
	}
	c, err := client.Open(client.Config{Profile: d.dir, Dial: d.s.dial, Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		d.t.Fatal(err)
	}
	d.c = c
}

func (d *device) send(to, text string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := d.c.Queue(to, text)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.c.Flush(ctx, id); err != nil {
		d.t.Fatalf("send %q: %v", text, err)
	}
}

func (d *device) recv(want ...string) []store.Message {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []store.Message
	err := d.c.Receive(ctx, 500*time.Millisecond, func(m store.Message) error { got = append(got, m); return nil })
	if err != nil {
		d.t.Fatalf("receive: %v", err)
	}
	var texts []string
	for _, m := range got {
		texts = append(texts, m.From+":"+m.Text)
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		d.t.Fatalf("%s received %q, want %q", d.address, texts, want)
	}
	return got
}

func (d *device) history(peer string) []store.Message {
	d.t.Helper()
	h, err := d.c.History(peer, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	return h
}

func TestTwoUsersExchangeMessages(t *testing.T) {
	s := newServer(t)
	alice, bob := s.device(t, "alice"), s.device(t, "bob")
	const A, B = "alice@a.example", "bob@a.example"

	for _, bad := range []string{"bob", "bob@", A, ""} {
		if _, err := alice.c.Queue(bad, "x"); err == nil {
			t.Errorf("Queue(%q) accepted", bad)
		}
	}
	alice.send(B, "hello bob")
	bob.recv(A + ":hello bob")
	bob.send(A, "hi alice")
	alice.recv(B + ":hi alice")

	// Bob offline (not running) while alice sends three.
	bob.c.Close()
	for _, m := range []string{"one", "two", "three"} {
		alice.send(B, m)
	}
	bob.reopen()
	bob.recv(A+":one", A+":two", A+":three")
	bob.recv() // nothing twice

	// Streams cut while messages are queued: they are sent once.
	id, err := alice.c.Queue(B, "across a drop")
	if err != nil {
		t.Fatal(err)
	}
	s.dropAll()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.c.Flush(ctx, id); err != nil {
		t.Fatal(err)
	}
	bob.recv(A + ":across a drop")

	ha, hb := alice.history(B), bob.history(A)
	var queued []store.OutboxItem
	alice.c.Store().View(func(tx *store.Tx) (err error) { queued, err = tx.Outbox(); return })
	if len(queued) != 0 {
		t.Fatalf("outbox after everything was sent: %+v", queued)
	}
	if len(ha) != 6 || len(hb) != 6 {
		t.Fatalf("history lengths %d, %d; want 6", len(ha), len(hb))
	}
	for i := range ha {
		if ha[i].ID != hb[i].ID || ha[i].Seq != hb[i].Seq || ha[i].Text != hb[i].Text || ha[i].From != hb[i].From {
			t.Fatalf("histories differ at %d: %+v vs %+v", i, ha[i], hb[i])
		}
		if i > 0 && ha[i].Seq <= ha[i-1].Seq {
			t.Fatalf("history out of order at %d", i)
		}
	}
}

func TestQueuedWhileServerUnreachable(t *testing.T) {
	s := newServer(t)
	alice, bob := s.device(t, "alice"), s.device(t, "bob")
	alice.send("bob@a.example", "first")
	bob.recv("alice@a.example:first")

	// A Flush that runs out of time leaves the message queued; a later run sends it once.
	id, err := alice.c.Queue("bob@a.example", "later")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	err = alice.c.Flush(ctx, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush with no time = %v", err)
	}
	alice.reopen()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.c.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	bob.recv("alice@a.example:later")
	if h := alice.history("bob@a.example"); len(h) != 2 || h[1].Text != "later" {
		t.Fatalf("alice history %+v", h)
	}
}

func TestSendToUserWithoutReachableDevice(t *testing.T) {
	s := newServer(t)
	alice := s.device(t, "alice")
	// carol's only device logged in without MLS: it published no KeyPackages.
	if _, err := s.srv.UserAdd(context.Background(), "carol", []byte("pw-carol-long"), false); err != nil {
		t.Fatal(err)
	}
	carol, err := client.Open(client.Config{Profile: t.TempDir(), Dial: s.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := carol.Login(ctx, client.LoginParams{User: "carol@a.example", Password: "pw-carol-long", Server: "pipe"}); !errors.Is(err, client.ErrNoE2EE) {
		t.Fatalf("login without MLS = %v", err)
	}
	id, err := alice.c.Queue("carol@a.example", "anyone there?")
	if err != nil {
		t.Fatal(err)
	}
	err = alice.c.Flush(ctx, id)
	if !errors.Is(err, client.ErrNotDelivered) || !strings.Contains(err.Error(), "no device that can receive") {
		t.Fatalf("send to an unreachable user = %v", err)
	}
	var items []store.OutboxItem
	alice.c.Store().View(func(tx *store.Tx) (err error) { items, err = tx.Outbox(); return })
	if len(items) != 1 || items[0].Failed == "" || items[0].Payload != nil {
		t.Fatalf("outbox = %+v, want one failed, never encrypted item", items)
	}
	// A later flush does not try it again.
	if err := alice.c.Flush(ctx, ""); err != nil {
		t.Fatalf("flush with only a failed item = %v", err)
	}
}

func TestFlushEverySendsQueued(t *testing.T) {
	s := newServer(t)
	alice, bob := s.device(t, "alice"), s.device(t, "bob")
	if _, err := alice.c.Queue("bob@a.example", "queued, nobody flushes"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { alice.c.FlushEvery(ctx, 50*time.Millisecond); close(done) }()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := bob.c.Receive(rctx, 200*time.Millisecond, func(m store.Message) error { got = append(got, m.Text); return nil })
		rcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	if len(got) != 1 || got[0] != "queued, nobody flushes" {
		t.Fatalf("bob received %q", got)
	}
}
