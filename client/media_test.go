package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/store"
	"hearth/homeserver"
	"hearth/homeserver/wire"
	"hearth/keys/media"
)

// cutOnce wraps a dialer so that the first stream to have written more
// than after bytes is cut, as a lost network would: the write fails and
// the stream closes. Later streams are left alone.
type cutOnce struct {
	dial  client.DialFunc
	after int64
	done  atomic.Bool
	cuts  atomic.Int32
}

func (c *cutOnce) Dial(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
	rwc, err := c.dial(ctx, addr, ca)
	if err != nil {
		return nil, err
	}
	return &cutConn{ReadWriteCloser: rwc, c: c}, nil
}

type cutConn struct {
	io.ReadWriteCloser
	c       *cutOnce
	mu      sync.Mutex
	written int64
}

func (cc *cutConn) Write(p []byte) (int, error) {
	cc.mu.Lock()
	cc.written += int64(len(p))
	cut := cc.written > cc.c.after && cc.c.done.CompareAndSwap(false, true)
	cc.mu.Unlock()
	if cut {
		cc.c.cuts.Add(1)
		cc.ReadWriteCloser.Close()
		return 0, io.ErrClosedPipe
	}
	return cc.ReadWriteCloser.Write(p)
}

func receiveAll(t *testing.T, d *dev) []store.Message {
	t.Helper()
	var got []store.Message
	if err := d.c.Receive(ctx30(t), 300*time.Millisecond, func(m store.Message) error { got = append(got, m); return nil }); err != nil {
		t.Fatalf("receive: %v", err)
	}
	return got
}

// TestSendFile: alice sends a file to bob; her upload is cut mid-way and
// resumes; bob and his second device receive the reference and fetch a
// byte-identical file; a reference with a wrong hash or key is refused
// before anything is written.
func TestSendFile(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	cut := &cutOnce{dial: ts.Dial(), after: 700 << 10}
	prof := t.TempDir()
	// One connection: the sequential upload's resume (several connections:
	// TestMediaParallelConnections).
	ac, err := client.Open(client.Config{Profile: prof, Dial: cut.Dial, Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MediaConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	alice := &dev{t: t, c: ac, user: A, profile: prof}
	b1, b2 := newDev(t, ts, B), newDev(t, ts, B)
	cut.done.Store(true) // not while logging in
	alice.login(pw)
	b1.login(pw)
	b2.link(pw, b1)

	file := make([]byte, 1<<20+12345)
	rand.Read(file)
	path := filepath.Join(t.TempDir(), "holiday.jpg")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	cut.done.Store(false)
	id, err := alice.c.SendFile(ctx30(t), B, path, "")
	if err != nil {
		t.Fatal(err)
	}
	if cut.cuts.Load() != 1 {
		t.Fatalf("the upload was not cut (cuts %d): the resume path was not exercised", cut.cuts.Load())
	}
	sent, err := alice.c.MediaOf(id)
	if err != nil || sent.Type != "image/jpeg" || sent.Name != "holiday.jpg" || sent.Size != int64(len(file)) {
		t.Fatalf("sent reference %+v, %v", sent, err)
	}

	for _, d := range []*dev{b1, b2} {
		got := receiveAll(t, d)
		if len(got) != 1 || got[0].ID != id || got[0].From != A || got[0].Media == nil {
			t.Fatalf("%s received %+v", d.user, got)
		}
		if *got[0].Media != sent {
			t.Fatalf("received reference %+v, sent %+v", *got[0].Media, sent)
		}
		ref, err := d.c.MediaOf(id)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := d.c.FetchMedia(ctx30(t), ref, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), file) {
			t.Fatal("fetched file differs")
		}
	}

	bad := sent
	bad.SHA256 = "00" + sent.SHA256[2:]
	var out bytes.Buffer
	if err := b1.c.FetchMedia(ctx30(t), bad, &out); err == nil || out.Len() != 0 {
		t.Fatalf("wrong hash: %v, %d bytes written", err, out.Len())
	}
	k, _ := media.NewKey(rand.Reader)
	bad = sent
	bad.Key = k.Text()
	if err := b1.c.FetchMedia(ctx30(t), bad, &out); !errors.Is(err, media.ErrAuth) || out.Len() != 0 {
		t.Fatalf("wrong key: %v, %d bytes written", err, out.Len())
	}
	bad = sent
	bad.Size++
	if err := b1.c.FetchMedia(ctx30(t), bad, &out); err == nil || out.Len() != 0 {
		t.Fatalf("wrong size: %v, %d bytes written", err, out.Len())
	}
	if _, err := b1.c.MediaOf("no-such-message"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
	// Text messages still work beside media ones, and carry no media.
	alice.send(B, "did you get it?")
	if got := receiveAll(t, b1); len(got) != 1 || got[0].Media != nil || got[0].Text != "did you get it?" {
		t.Fatalf("text after media: %+v", got)
	}
	if _, err := b1.c.MediaOf(b1.historyIDs(A)[1]); !errors.Is(err, client.ErrNoMedia) {
		t.Fatalf("text message: %v", err)
	}
	// Nothing is left behind in the profile.
	left, _ := filepath.Glob(filepath.Join(prof, ".upload-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestSendFileRefusals(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a := newDev(t, ts, A)
	a.login(pw)
	_ = B
	dir := t.TempDir()
	if _, err := a.c.SendFile(ctx30(t), B, dir, ""); err == nil {
		t.Fatal("a folder was sent")
	}
	if _, err := a.c.SendFile(ctx30(t), B, filepath.Join(dir, "missing"), ""); err == nil {
		t.Fatal("a missing file was sent")
	}
	p := filepath.Join(dir, "f.bin")
	os.WriteFile(p, []byte("x"), 0o600)
	if _, err := a.c.SendFile(ctx30(t), B, p, "text/plain\n"); err == nil {
		t.Fatal("a MIME type with a control character was accepted")
	}
}

// TestSendFileServerLimits: a server taking smaller requests than the
// client's default gets them (the client halves its chunks); a file over
// the server's size limit is refused before anything is queued.
func TestSendFileServerLimits(t *testing.T) {
	ts := client.NewTestServerMedia(t, "a.example", homeserver.MediaConfig{MaxChunkBytes: 50_000, MaxBytes: 400_000})
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	a, b := newDev(t, ts, A), newDev(t, ts, B)
	a.login(pw)
	b.login(pw)
	dir := t.TempDir()
	file := make([]byte, 300_000)
	rand.Read(file)
	p := filepath.Join(dir, "clip.mp4")
	os.WriteFile(p, file, 0o600)
	id, err := a.c.SendFile(ctx30(t), B, p, "")
	if err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, b)
	if len(got) != 1 || got[0].ID != id || got[0].Media == nil || got[0].Media.Type != "video/mp4" {
		t.Fatalf("received %+v", got)
	}
	var out bytes.Buffer
	if err := b.c.FetchMedia(ctx30(t), *got[0].Media, &out); err != nil || !bytes.Equal(out.Bytes(), file) {
		t.Fatalf("fetch: %v, equal %v", err, bytes.Equal(out.Bytes(), file))
	}

	big := filepath.Join(dir, "big.bin")
	os.WriteFile(big, make([]byte, 400_001), 0o600)
	if _, err := a.c.SendFile(ctx30(t), B, big, ""); !wire.Is(err, wire.Code_CODE_TOO_LARGE) {
		t.Fatalf("oversized file: %v", err)
	}
	var queued []store.OutboxItem
	a.c.Store().View(func(tx *store.Tx) (err error) { queued, err = tx.Outbox(); return })
	if len(queued) != 0 {
		t.Fatalf("a refused file left %d outbox items", len(queued))
	}
}

// TestSendFileToGroup: a file sent to a group conversation reaches every
// member, each of whom fetches it.
func TestSendFileToGroup(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	us := groupUsers(t, ts, "ann", "ben", "cat")
	gid, err := us[0].c.Groups().Create(ctx30(t), "trip", []string{us[1].user, us[2].user})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range us[1:] {
		d.drain()
	}
	file := make([]byte, 200_000)
	rand.Read(file)
	p := filepath.Join(t.TempDir(), "map.png")
	os.WriteFile(p, file, 0o600)
	id, err := us[0].c.SendFile(ctx30(t), gid, p, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range us[1:] {
		got := d.drain()
		if len(got) != 1 || got[0].ID != id || got[0].Conversation != gid || got[0].Media == nil {
			t.Fatalf("%s received %+v", d.user, got)
		}
		var out bytes.Buffer
		if err := d.c.FetchMedia(ctx30(t), *got[0].Media, &out); err != nil || !bytes.Equal(out.Bytes(), file) {
			t.Fatalf("%s fetch: %v", d.user, err)
		}
	}
}

// countDial counts the bytes written on every stream it dials and calls
// at (once) when the count passes after.
type countDial struct {
	dial    client.DialFunc
	written atomic.Int64
	after   int64
	at      func()
	once    sync.Once
}

func (d *countDial) Dial(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
	rwc, err := d.dial(ctx, addr, ca)
	if err != nil {
		return nil, err
	}
	return &countConn{ReadWriteCloser: rwc, d: d}, nil
}

type countConn struct {
	io.ReadWriteCloser
	d *countDial
}

func (c *countConn) Write(p []byte) (int, error) {
	if c.d.written.Add(int64(len(p))) > c.d.after && c.d.at != nil {
		c.d.once.Do(c.d.at)
	}
	return c.ReadWriteCloser.Write(p)
}

// TestSendFileResumesAcrossRuns: a send interrupted mid-upload (its
// process gone) is resumed by the next send of the same file: the second
// run uploads only the rest, and the file arrives intact.
func TestSendFileResumesAcrossRuns(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	prof := t.TempDir()
	open := func(d *countDial) *client.Client {
		c, err := client.Open(client.Config{Profile: prof, Dial: d.Dial, Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := &countDial{dial: ts.Dial(), after: 1 << 62}
	ac := open(first)
	alice := &dev{t: t, c: ac, user: A, profile: prof}
	alice.login(pw)
	b := newDev(t, ts, B)
	b.login(pw)

	file := make([]byte, 2<<20)
	rand.Read(file)
	path := filepath.Join(t.TempDir(), "video.mp4")
	os.WriteFile(path, file, 0o600)
	ctx, cancel := context.WithCancel(ctx30(t))
	first.written.Store(0)
	// The "process" ends after ~1,400 KiB. The writes in progress then, at
	// most one 256 KiB chunk on each of the 4 connections, are abandoned
	// with their connections (client/session.Conn), so the server holds at
	// least 1,400 - 4 × 256 KiB of whole chunks: two or more.
	first.after, first.at = 1400<<10, cancel
	if _, err := ac.SendFile(ctx, B, path, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted send: %v", err)
	}
	ac.Close()
	if left, _ := filepath.Glob(filepath.Join(prof, ".upload-*")); len(left) != 1 {
		t.Fatalf("ciphertext kept for the next run: %v", left)
	}

	second := &countDial{dial: ts.Dial(), after: 1 << 62}
	ac2 := open(second)
	defer ac2.Close()
	id, err := ac2.SendFile(ctx30(t), B, path, "")
	if err != nil {
		t.Fatal(err)
	}
	// Two chunks (512 KiB) not sent again, less what the second run sends
	// besides the file (sealing, frames, the message: ≈ 17 KB).
	if w := second.written.Load(); w > int64(len(file))-400<<10 {
		t.Fatalf("the second run wrote %d bytes for a %d-byte file: it did not resume", w, len(file))
	}
	got := receiveAll(t, b)
	if len(got) != 1 || got[0].ID != id || got[0].Media == nil {
		t.Fatalf("received %+v", got)
	}
	var out bytes.Buffer
	if err := b.c.FetchMedia(ctx30(t), *got[0].Media, &out); err != nil || !bytes.Equal(out.Bytes(), file) {
		t.Fatalf("fetch: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(prof, ".upload-*")); len(left) != 0 {
		t.Fatalf("ciphertext left after the send: %v", left)
	}
	// Sending the same file again is a new upload and a new message.
	id2, err := ac2.SendFile(ctx30(t), B, path, "")
	if err != nil || id2 == id {
		t.Fatalf("second send: %q, %v", id2, err)
	}
}
