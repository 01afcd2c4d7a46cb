package homeserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

func upload(id string, total, off uint64, data []byte, final bool) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: &wire.UploadMedia{
		UploadId: id, TotalSize: total, Offset: off, Data: data, Final: final}}}
}

func download(id string, off, n uint64) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{DownloadMedia: &wire.DownloadMedia{MediaId: id, Offset: off, Length: n}}}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// fetchAll downloads a media in ranges of step bytes.
func fetchAll(c *client, id string, step uint64) []byte {
	c.t.Helper()
	var out []byte
	for {
		d := c.must(download(id, uint64(len(out)), step)).GetMediaData()
		if len(d.Data) == 0 {
			if uint64(len(out)) != d.TotalSize {
				c.t.Fatalf("download ended at %d of %d", len(out), d.TotalSize)
			}
			return out
		}
		out = append(out, d.Data...)
	}
}

// TestMediaUploadResumeDownload: an upload in pieces, cut by a reconnect,
// resumes at the offset the server reports; the complete media survives a
// restart and downloads byte-identical in any range size, by another user.
func TestMediaUploadResumeDownload(t *testing.T) {
	h := newHarness(t, Config{})
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	file := randBytes(700_000)
	total := uint64(len(file))

	up := alice.must(upload("", total, 0, file[:200_000], false)).GetUploadMedia()
	if up.UploadId == "" || up.Received != 200_000 || up.MediaId != "" {
		t.Fatalf("start: %v", up)
	}
	up = alice.must(upload(up.UploadId, 0, 200_000, file[200_000:300_000], false)).GetUploadMedia()
	if up.Received != 300_000 {
		t.Fatalf("append: %v", up)
	}

	// Reconnect (a new stream of the same device) and ask where to resume.
	alice.conn.Close()
	again := h.connect()
	if r := again.hello(alice.access); r.GetHelloOk() == nil {
		t.Fatalf("hello: %v", r)
	}
	st := again.must(upload(up.UploadId, 0, 0, nil, false)).GetUploadMedia()
	if st.Received != 300_000 || st.TotalSize != total {
		t.Fatalf("status after reconnect: %v", st)
	}
	off := st.Received
	for off < total {
		end := min(off+256<<10, total)
		r := again.must(upload(up.UploadId, 0, off, file[off:end], end == total)).GetUploadMedia()
		if r.Received != end {
			t.Fatalf("received %d, want %d", r.Received, end)
		}
		off = end
		up = r
	}
	want := sha256.Sum256(file)
	if len(up.MediaId) < 22 || !bytes.Equal(up.Sha256, want[:]) {
		t.Fatalf("final answer: media id %q sha %x, want sha %x", up.MediaId, up.Sha256, want)
	}
	// A repeated final (its answer was lost) gets the same answer.
	rep := again.must(upload(up.UploadId, 0, total, nil, true)).GetUploadMedia()
	if rep.MediaId != up.MediaId || !bytes.Equal(rep.Sha256, up.Sha256) {
		t.Fatalf("repeated final: %v, first %v", rep, up)
	}

	if got := fetchAll(bob, up.MediaId, 100_000); !bytes.Equal(got, file) {
		t.Fatal("download differs from upload")
	}
	mid := bob.must(download(up.MediaId, 123_456, 1000)).GetMediaData()
	if !bytes.Equal(mid.Data, file[123_456:124_456]) || mid.TotalSize != total {
		t.Fatal("range download differs")
	}

	h.restart()
	bob2 := h.connect()
	bob2.hello(bob.access)
	if got := fetchAll(bob2, up.MediaId, 0); !bytes.Equal(got, file) {
		t.Fatal("download after restart differs")
	}
}

// TestMediaRefusals: bad requests get their code and change nothing.
func TestMediaRefusals(t *testing.T) {
	h := newHarness(t, Config{Media: MediaConfig{MaxBytes: 1 << 20, MaxOpen: 2}})
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	file := randBytes(1000)

	alice.fails(upload("", 1<<20+1, 0, nil, false), wire.Code_CODE_TOO_LARGE)
	alice.fails(upload("", 0, 0, file, false), wire.Code_CODE_BAD_REQUEST)
	alice.fails(upload("", 1000, 5, file[:10], false), wire.Code_CODE_BAD_REQUEST)
	alice.fails(upload("", 10, 0, file[:11], false), wire.Code_CODE_BAD_REQUEST)
	alice.fails(upload("", 1<<20, 0, make([]byte, 256<<10+1), false), wire.Code_CODE_TOO_LARGE)
	alice.fails(upload("", 1000, 0, file[:10], true), wire.Code_CODE_BAD_REQUEST) // final but short

	id := alice.must(upload("", 1000, 0, file[:100], false)).GetUploadMedia().UploadId
	status := func() uint64 { return alice.must(upload(id, 0, 0, nil, false)).GetUploadMedia().Received }
	alice.fails(upload(id, 0, 50, file[50:150], false), wire.Code_CODE_BAD_REQUEST)   // behind
	alice.fails(upload(id, 0, 200, file[200:300], false), wire.Code_CODE_BAD_REQUEST) // ahead
	alice.fails(upload(id, 0, 100, make([]byte, 901), false), wire.Code_CODE_BAD_REQUEST)
	alice.fails(upload(id, 999, 100, file[100:200], false), wire.Code_CODE_BAD_REQUEST) // other total
	alice.fails(upload(id, 0, 100, file[100:200], true), wire.Code_CODE_BAD_REQUEST)    // final but short
	if got := status(); got != 100 {
		t.Fatalf("refused requests changed the upload: received %d", got)
	}
	bob.fails(upload(id, 0, 100, file[100:200], false), wire.Code_CODE_NOT_FOUND) // another device's upload
	alice.fails(upload("nope-not-an-upload-id", 0, 0, nil, false), wire.Code_CODE_NOT_FOUND)
	alice.fails(upload("../../etc/passwd", 0, 0, nil, false), wire.Code_CODE_NOT_FOUND)

	// Incomplete media cannot be downloaded, even knowing its media id.
	var mediaID string
	h.db.Read(t.Context(), func(tx *storage.Tx) error { m, err := tx.MediaUpload(id); mediaID = m.MediaID; return err })
	bob.fails(download(mediaID, 0, 0), wire.Code_CODE_NOT_FOUND)
	bob.fails(download("AAAAAAAAAAAAAAAAAAAAAA", 0, 0), wire.Code_CODE_NOT_FOUND)

	// Two uploads in progress is this device's limit.
	alice.must(upload("", 10, 0, nil, false))
	alice.fails(upload("", 10, 0, nil, false), wire.Code_CODE_LIMIT)

	done := alice.must(upload(id, 0, 100, file[100:], true)).GetUploadMedia()
	alice.fails(upload(id, 0, 1000, file[:1], false), wire.Code_CODE_BAD_REQUEST) // complete: no more data
	bob.fails(download(done.MediaId, 1001, 0), wire.Code_CODE_BAD_REQUEST)
	if d := bob.must(download(done.MediaId, 1000, 0)).GetMediaData(); len(d.Data) != 0 || d.TotalSize != 1000 {
		t.Fatalf("download at the end: %v", d)
	}
	if got := fetchAll(bob, done.MediaId, 0); !bytes.Equal(got, file) {
		t.Fatal("download differs")
	}

	// A pending (unapproved) device cannot use media.
	lk, err := identity.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pending := h.connect()
	pending.login("alice", "password-alice", lk.Public().Bytes())
	pending.fails(download(done.MediaId, 0, 0), wire.Code_CODE_PENDING_APPROVAL)
	anon := h.connect()
	anon.fails(download(done.MediaId, 0, 0), wire.Code_CODE_UNAUTHENTICATED)
}

// TestMediaQuota: a user's uploads together stay within the quota.
func TestMediaQuota(t *testing.T) {
	h := newHarness(t, Config{Media: MediaConfig{Quota: 1500}})
	alice, _ := h.firstDevice("alice")
	alice.must(upload("", 1000, 0, nil, false))
	alice.fails(upload("", 501, 0, nil, false), wire.Code_CODE_LIMIT)
	alice.must(upload("", 500, 0, nil, false))
}

// TestMediaJanitor: an abandoned upload is removed (row and file) after
// the upload timeout by the server's clock; complete media stays.
func TestMediaJanitor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	h := newHarness(t, Config{Media: MediaConfig{Dir: dir, UploadTimeout: time.Hour, JanitorEvery: -1}})
	alice, _ := h.firstDevice("alice")
	file := randBytes(300)
	stale := alice.must(upload("", 1000, 0, file, false)).GetUploadMedia().UploadId
	done := alice.must(upload("", 300, 0, file, true)).GetUploadMedia()
	if _, err := os.Stat(filepath.Join(dir, "partial", stale)); err != nil {
		t.Fatalf("partial file: %v", err)
	}
	if n, err := h.s.RunMediaJanitor(t.Context()); n != 0 || err != nil {
		t.Fatalf("janitor before the timeout: %d, %v", n, err)
	}
	h.clock.Add(time.Hour + time.Second)
	fresh := alice.must(upload("", 1000, 0, file, false)).GetUploadMedia().UploadId
	if n, err := h.s.RunMediaJanitor(t.Context()); n != 1 || err != nil {
		t.Fatalf("janitor after the timeout: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partial", stale)); !os.IsNotExist(err) {
		t.Fatalf("abandoned upload's file still there: %v", err)
	}
	alice.fails(upload(stale, 0, 300, file[:10], false), wire.Code_CODE_NOT_FOUND)
	if got := alice.must(upload(fresh, 0, 0, nil, false)).GetUploadMedia().Received; got != 300 {
		t.Fatalf("fresh upload: received %d", got)
	}
	if got := fetchAll(alice, done.MediaId, 0); !bytes.Equal(got, file) {
		t.Fatal("complete media damaged by the janitor")
	}

	// A deleted user's media goes, files included, at the next pass.
	if err := h.s.UserDelete(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.RunMediaJanitor(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"partial", "complete"} {
		if left, _ := os.ReadDir(filepath.Join(dir, sub)); len(left) != 0 {
			t.Fatalf("files left in %s after the user was deleted: %v", sub, left)
		}
	}
}

// TestMediaConcurrentAppend: two streams of one device racing to append at
// the same offset: exactly one wins, the upload holds its bytes once.
func TestMediaConcurrentAppend(t *testing.T) {
	h := newHarness(t, Config{})
	alice, _ := h.firstDevice("alice")
	other := h.connect()
	other.hello(alice.access)
	file := randBytes(1000)
	id := alice.must(upload("", 1000, 0, file[:100], false)).GetUploadMedia().UploadId
	for round := 0; round < 8; round++ {
		off := uint64(100 + round*100)
		a := alice.start(upload(id, 0, off, file[off:off+100], false))
		b := other.start(upload(id, 0, off, file[off:off+100], false))
		ra, rb := alice.await(a), other.await(b)
		if (ra.GetError() == nil) == (rb.GetError() == nil) {
			t.Fatalf("round %d: both or neither appended: %v / %v", round, ra, rb)
		}
	}
	done := alice.must(upload(id, 0, 900, file[900:], true)).GetUploadMedia()
	if got := fetchAll(alice, done.MediaId, 0); !bytes.Equal(got, file) {
		t.Fatal("racing appends corrupted the upload")
	}
}

// TestMediaFinishAfterCrash: a crash after the complete file was renamed
// into place but before its row was marked complete; the repeated final
// request finds the file and completes the upload.
func TestMediaFinishAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	h := newHarness(t, Config{Media: MediaConfig{Dir: dir}})
	alice, _ := h.firstDevice("alice")
	file := randBytes(5000)
	id := alice.must(upload("", 5000, 0, file, false)).GetUploadMedia().UploadId
	var row *storage.Media
	h.db.Read(t.Context(), func(tx *storage.Tx) (err error) { row, err = tx.MediaUpload(id); return })
	if err := os.Rename(filepath.Join(dir, "partial", id), filepath.Join(dir, "complete", row.MediaID)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	c := h.connect()
	c.hello(alice.access)
	if got := c.must(upload(id, 0, 0, nil, false)).GetUploadMedia().Received; got != 5000 {
		t.Fatalf("received after the crash: %d", got)
	}
	c.fails(download(row.MediaID, 0, 0), wire.Code_CODE_NOT_FOUND) // not complete yet
	done := c.must(upload(id, 0, 5000, nil, true)).GetUploadMedia()
	want := sha256.Sum256(file)
	if done.MediaId != row.MediaID || !bytes.Equal(done.Sha256, want[:]) {
		t.Fatalf("completed as %v", done)
	}
	if got := fetchAll(c, done.MediaId, 0); !bytes.Equal(got, file) {
		t.Fatal("download differs")
	}
}
