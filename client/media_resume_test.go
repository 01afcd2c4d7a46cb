package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/keys/media"
)

// cutAfter wraps a dialer: once armed, the first connection through which
// more than limit bytes went (written when cutWrites, else read) since
// arming is closed, as a lost network would close it. It counts the bytes
// moved on connections dialled after that cut.
type cutAfter struct {
	dial      client.DialFunc
	cutWrites bool
	limit     int64

	armed, cut     atomic.Bool
	moved          atomic.Int64 // since arming, in the cut direction
	laterW, laterR atomic.Int64 // on connections dialled after the cut
	laterConns     atomic.Int32
	armedConns     atomic.Int32 // connections dialled while armed
}

func (c *cutAfter) Dial(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
	rwc, err := c.dial(ctx, addr, ca)
	if err != nil {
		return nil, err
	}
	if c.armed.Load() {
		c.armedConns.Add(1)
	}
	later := c.cut.Load()
	if later {
		c.laterConns.Add(1)
	}
	return &cutAfterConn{ReadWriteCloser: rwc, c: c, later: later}, nil
}

type cutAfterConn struct {
	io.ReadWriteCloser
	c     *cutAfter
	later bool
}

// pass counts n bytes in the given direction and reports whether this
// connection must be cut now.
func (cc *cutAfterConn) pass(n int, write bool) bool {
	c := cc.c
	if cc.later {
		if write {
			c.laterW.Add(int64(n))
		} else {
			c.laterR.Add(int64(n))
		}
	}
	if !c.armed.Load() || write != c.cutWrites {
		return false
	}
	return c.moved.Add(int64(n)) > c.limit && c.cut.CompareAndSwap(false, true)
}

func (cc *cutAfterConn) Write(p []byte) (int, error) {
	if cc.pass(len(p), true) {
		cc.ReadWriteCloser.Close()
		return 0, io.ErrClosedPipe
	}
	return cc.ReadWriteCloser.Write(p)
}

func (cc *cutAfterConn) Read(p []byte) (int, error) {
	n, err := cc.ReadWriteCloser.Read(p)
	if n > 0 && cc.pass(n, false) {
		cc.ReadWriteCloser.Close()
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestMediaResumesOnTheSameByte: an upload and a download each lose their
// connection part-way (after 700 and 600 KiB) and go on, after the
// reconnect, from what the server holds or what the device has: the bytes
// moved on the new connection are less than the whole file minus one
// 256 KiB chunk, which a transfer starting again from byte 0 could not do.
// The file arrives intact.
func TestMediaResumesOnTheSameByte(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	open := func(user string, c *cutAfter) *dev {
		prof := t.TempDir()
		cl, err := client.Open(client.Config{Profile: prof, Dial: c.Dial, Groups: mlsgroup.New(),
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return &dev{t: t, c: cl, user: user, profile: prof}
	}
	up := &cutAfter{dial: ts.Dial(), cutWrites: true, limit: 700 << 10}
	down := &cutAfter{dial: ts.Dial(), limit: 600 << 10}
	alice, bob := open(A, up), open(B, down)
	alice.login(pw)
	bob.login(pw)

	file := make([]byte, 1<<20+12345)
	rand.Read(file)
	path := filepath.Join(t.TempDir(), "clip.bin")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := media.SealedSize(int64(len(file)))
	const chunk = 256 << 10

	up.armed.Store(true)
	id, err := alice.c.SendFile(ctx30(t), B, path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !up.cut.Load() || up.laterConns.Load() == 0 {
		t.Fatalf("the upload was not cut (cut %v, later connections %d): the resume path was not exercised", up.cut.Load(), up.laterConns.Load())
	}
	if w := up.laterW.Load(); w >= sealed-chunk {
		t.Errorf("after the cut the upload wrote %d bytes of %d: it started again instead of resuming", w, sealed)
	} else {
		t.Logf("upload: %d of %d bytes written again after the cut", w, sealed)
	}

	got := receiveAll(t, bob)
	if len(got) != 1 || got[0].ID != id || got[0].Media == nil {
		t.Fatalf("bob received %+v", got)
	}
	down.armed.Store(true)
	var out bytes.Buffer
	if err := bob.c.FetchMedia(ctx30(t), *got[0].Media, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Fatal("downloaded file differs")
	}
	if !down.cut.Load() || down.laterConns.Load() == 0 {
		t.Fatalf("the download was not cut (cut %v, later connections %d)", down.cut.Load(), down.laterConns.Load())
	}
	if r := down.laterR.Load(); r >= sealed-chunk {
		t.Errorf("after the cut the download read %d bytes of %d: it started again instead of resuming", r, sealed)
	} else {
		t.Logf("download: %d of %d bytes read again after the cut", r, sealed)
	}
}
