package mediastore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestStoreUploadDownloadJanitor: the store on its own, on a real SQLite
// file: an upload in two pieces completes with the SHA-256 of its bytes,
// reads back in ranges, and the janitor removes an upload abandoned past
// UploadTimeout while keeping the complete one.
func TestStoreUploadDownloadJanitor(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, "h.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := &storage.User{Name: "alice", PassHash: "x", CreatedMs: 1}
	if err := db.Write(t.Context(), func(tx *storage.Tx) error { return tx.InsertUser(u) }); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st, err := Open(Config{}.WithDefaults(1<<20), Deps{DB: db, Now: clock, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	file := make([]byte, 3000)
	rand.Read(file)
	up, err := st.Start(t.Context(), u.ID, "DEV", &wire.UploadMedia{TotalSize: 3000, Data: file[:1000]})
	if err != nil || up.Received != 1000 {
		t.Fatalf("start: %v %v", up, err)
	}
	done, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: up.UploadId, Offset: 1000, Data: file[1000:], Final: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(file); done.MediaId == "" || !bytes.Equal(done.Sha256, sum[:]) {
		t.Fatalf("completed as %v", done)
	}
	if _, err := st.Append(t.Context(), "OTHER", &wire.UploadMedia{UploadId: up.UploadId}); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Fatalf("another device's upload: %v, want CODE_NOT_FOUND", err)
	}
	var got []byte
	for len(got) < len(file) {
		d, err := st.Download(t.Context(), &wire.DownloadMedia{MediaId: done.MediaId, Offset: uint64(len(got)), Length: 700})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Data...)
	}
	if !bytes.Equal(got, file) {
		t.Fatal("download differs")
	}
	stale, err := st.Start(t.Context(), u.ID, "DEV", &wire.UploadMedia{TotalSize: 10, Data: []byte("half")})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour) // past the default UploadTimeout of 24h
	if n, err := st.RunJanitor(t.Context()); n != 1 || err != nil {
		t.Fatalf("janitor: %d %v, want 1 abandoned upload removed", n, err)
	}
	if _, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: stale.UploadId}); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
		t.Fatalf("abandoned upload still there: %v", err)
	}
	if _, err := st.Download(t.Context(), &wire.DownloadMedia{MediaId: done.MediaId}); err != nil {
		t.Fatalf("complete media gone after the janitor: %v", err)
	}
}

// TestCompletionOutsideWriter: completing an upload (hash, fsync, rename
// of up to MaxBytes) runs outside the database's one writer goroutine.
// While a completion is held inside its file work, another write commits
// and the completion has not answered; released, it completes.
func TestCompletionOutsideWriter(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, "h.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	alice := &storage.User{Name: "alice", PassHash: "x", CreatedMs: 1}
	if err := db.Write(t.Context(), func(tx *storage.Tx) error { return tx.InsertUser(alice) }); err != nil {
		t.Fatal(err)
	}
	st, err := Open(Config{}.WithDefaults(1<<20), Deps{DB: db, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	st.finishHook = func(string) { close(entered); <-release }
	file := make([]byte, 3000)
	rand.Read(file)
	up, err := st.Start(t.Context(), alice.ID, "DEV", &wire.UploadMedia{TotalSize: 3000, Data: file[:1000]})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ok  *wire.UploadMediaOK
		err error
	}
	completed := make(chan result, 1)
	go func() {
		ok, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: up.UploadId, Offset: 1000, Data: file[1000:], Final: true})
		completed <- result{ok, err}
	}()
	<-entered // the completion is inside its file work now

	written := make(chan error, 1)
	go func() {
		bob := &storage.User{Name: "bob", PassHash: "x", CreatedMs: 1}
		written <- db.Write(t.Context(), func(tx *storage.Tx) error { return tx.InsertUser(bob) })
	}()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-completed:
		t.Fatal("the completion answered while its file work was held")
	case <-time.After(10 * time.Second): // a failure bound only: the write takes milliseconds
		close(release)
		t.Fatal("another write waited for a media completion: the file work runs inside the writer")
	}
	select {
	case <-completed:
		t.Fatal("the completion answered while its file work was held")
	default:
	}
	close(release)
	r := <-completed
	if sum := sha256.Sum256(file); r.err != nil || !bytes.Equal(r.ok.Sha256, sum[:]) {
		t.Fatalf("completed as %v, %v", r.ok, r.err)
	}
}
