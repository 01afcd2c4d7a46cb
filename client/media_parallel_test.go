package client_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/keys/media"
)

// TestMediaParallelConnections: over the real transport on 127.0.0.1
// (native QUIC, and the WebSocket), a 3 MiB file goes up in parts and
// comes down in ranges over four connections of each device at once; one
// of them is cut part-way through the upload and one through the download,
// and both go on from what the server holds or what the device has (less
// than the whole file minus a chunk moves again). The file arrives byte
// for byte.
func TestMediaParallelConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   bool
	}{{"quic", false}, {"websocket", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := client.NewTestServer(t, "a.example")
			const pw = "correct horse battery"
			A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
			dial := ts.DialQUIC(t, tc.ws)
			open := func(user string, c *cutAfter) *dev {
				prof := t.TempDir()
				cl, err := client.Open(client.Config{Profile: prof, Dial: c.Dial, Groups: mlsgroup.New(),
					MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MediaConnections: 4})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cl.Close() })
				return &dev{t: t, c: cl, user: user, profile: prof}
			}
			up := &cutAfter{dial: dial, cutWrites: true, limit: 1500 << 10}
			down := &cutAfter{dial: dial, limit: 1500 << 10}
			alice, bob := open(A, up), open(B, down)
			alice.login(pw)
			bob.login(pw)

			file := make([]byte, 3<<20+4321)
			rand.Read(file)
			path := filepath.Join(t.TempDir(), "film.bin")
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
			if n := up.armedConns.Load(); n < 3 {
				t.Errorf("the upload dialled %d connections, want the 3 extra ones at least", n)
			}
			if !up.cut.Load() || up.laterConns.Load() == 0 {
				t.Fatalf("the upload was not cut (cut %v, later connections %d)", up.cut.Load(), up.laterConns.Load())
			}
			if w := up.laterW.Load(); w >= sealed-chunk {
				t.Errorf("after the cut the upload wrote %d bytes of %d: it started again instead of resuming", w, sealed)
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
			if n := down.armedConns.Load(); n < 3 {
				t.Errorf("the download dialled %d connections, want the 3 extra ones at least", n)
			}
			if !down.cut.Load() || down.laterConns.Load() == 0 {
				t.Fatalf("the download was not cut (cut %v, later connections %d)", down.cut.Load(), down.laterConns.Load())
			}
			if r := down.laterR.Load(); r >= sealed-chunk {
				t.Errorf("after the cut the download read %d bytes of %d: it started again instead of resuming", r, sealed)
			}
		})
	}
}

// TestMediaSmallFileOneConnection: a file under the 1 MiB threshold, and
// any file with MediaConnections 1, moves over the session's connection
// only: no other connection is dialled for it.
func TestMediaSmallFileOneConnection(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	B := ts.AddUser(t, "bob", pw)
	newDev(t, ts, B).login(pw)
	for i, tc := range []struct {
		name  string
		size  int
		conns int
	}{{"900 KiB", 900 << 10, 4}, {"2 MiB, MediaConnections 1", 2 << 20, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			A := ts.AddUser(t, fmt.Sprintf("alice%d", i), pw)
			c := &cutAfter{dial: ts.Dial(), limit: 1 << 62}
			prof := t.TempDir()
			cl, err := client.Open(client.Config{Profile: prof, Dial: c.Dial, Groups: mlsgroup.New(),
				MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MediaConnections: tc.conns})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			alice := &dev{t: t, c: cl, user: A, profile: prof}
			alice.login(pw)
			alice.send(B, "hello") // the session is up before counting
			file := make([]byte, tc.size)
			rand.Read(file)
			path := filepath.Join(t.TempDir(), "small.bin")
			if err := os.WriteFile(path, file, 0o600); err != nil {
				t.Fatal(err)
			}
			c.armed.Store(true)
			if _, err := alice.c.SendFile(ctx30(t), B, path, ""); err != nil {
				t.Fatal(err)
			}
			if n := c.armedConns.Load(); n != 0 {
				t.Errorf("the upload dialled %d more connections, want none", n)
			}
		})
	}
}
