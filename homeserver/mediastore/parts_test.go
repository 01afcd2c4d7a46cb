package mediastore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestUploadInParts: an upload in parts takes its parts in any order and
// completes with the SHA-256 of the whole; malformed, overlapping and
// gapped data, a final request with a part missing and a forged upload id
// are refused with CODE_BAD_REQUEST (CODE_NOT_FOUND for the id) and change
// nothing; an abandoned upload in parts leaves no file behind the janitor.
func TestUploadInParts(t *testing.T) {
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
	st, err := Open(Config{MaxChunkBytes: 64 << 10}.WithDefaults(1<<20), Deps{DB: db, Now: func() time.Time { return now }, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	const partSize = minPartSize    // files up to 16 MiB
	const total = 2*partSize + 1000 // three parts, the last one short
	file := make([]byte, total)
	rand.Read(file)
	up, err := st.Start(t.Context(), u.ID, "DEV", &wire.UploadMedia{TotalSize: total, Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	if up.PartSize != partSize || !slices.Equal(up.PartReceived, []uint64{0, 0, 0}) {
		t.Fatalf("start answered %v, want part_size %d and three empty parts", up, partSize)
	}
	id := up.UploadId
	chunk := uint64(st.cfg.MaxChunkBytes)
	send := func(off, n uint64, final bool) (*wire.UploadMediaOK, error) {
		return st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: id, Offset: off, Data: file[off : off+n], Final: final})
	}
	// Part 2 first, then part 0's first chunk.
	if _, err := send(2*partSize, 1000, false); err != nil {
		t.Fatal(err)
	}
	if _, err := send(0, chunk, false); err != nil {
		t.Fatal(err)
	}
	before, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: id})
	if err != nil || !slices.Equal(before.PartReceived, []uint64{chunk, 0, 1000}) || before.Received != chunk+1000 {
		t.Fatalf("status: %v %v", before, err)
	}
	bad := []struct {
		name string
		r    *wire.UploadMedia
		code wire.Code
	}{
		{"overlap (part 0 again from 0)", &wire.UploadMedia{UploadId: id, Offset: 0, Data: file[:10]}, wire.Code_CODE_BAD_REQUEST},
		{"gap in part 0", &wire.UploadMedia{UploadId: id, Offset: chunk + 1, Data: file[chunk+1 : chunk+11]}, wire.Code_CODE_BAD_REQUEST},
		{"gap in part 1", &wire.UploadMedia{UploadId: id, Offset: partSize + 5, Data: file[partSize+5 : partSize+15]}, wire.Code_CODE_BAD_REQUEST},
		{"crosses the end of part 0", &wire.UploadMedia{UploadId: id, Offset: chunk, Data: make([]byte, partSize)}, wire.Code_CODE_TOO_LARGE},
		{"past the end", &wire.UploadMedia{UploadId: id, Offset: total, Data: []byte("x")}, wire.Code_CODE_BAD_REQUEST},
		{"final with parts missing", &wire.UploadMedia{UploadId: id, Offset: total, Final: true}, wire.Code_CODE_BAD_REQUEST},
		{"final at a wrong offset", &wire.UploadMedia{UploadId: id, Offset: 7, Final: true}, wire.Code_CODE_BAD_REQUEST},
		{"other total_size", &wire.UploadMedia{UploadId: id, TotalSize: 5, Offset: 2 * partSize, Data: []byte("x")}, wire.Code_CODE_BAD_REQUEST},
		{"forged upload id", &wire.UploadMedia{UploadId: "AAAAAAAAAAAAAAAAAAAAAA", Offset: partSize, Data: file[partSize : partSize+10]}, wire.Code_CODE_NOT_FOUND},
		{"not an id", &wire.UploadMedia{UploadId: "../" + id, Offset: partSize, Data: file[partSize : partSize+10]}, wire.Code_CODE_NOT_FOUND},
	}
	for _, b := range bad {
		if _, err := st.Append(t.Context(), "DEV", b.r); !wire.Is(err, b.code) {
			t.Errorf("%s: %v, want %v", b.name, err, b.code)
		}
	}
	for off := uint64(partSize); off < 2*partSize-chunk; off += chunk {
		if _, err := send(off, chunk, false); err != nil {
			t.Fatal(err)
		}
	}
	last := 2*partSize - chunk
	if _, err := send(last, 100, false); err != nil {
		t.Fatal(err)
	}
	if _, err := send(last+100, chunk, false); !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
		t.Fatalf("data crossing the end of part 1: %v, want CODE_BAD_REQUEST", err)
	}
	after, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: id})
	if err != nil || after.PartReceived[0] != chunk || after.PartReceived[1] != partSize-chunk+100 || after.PartReceived[2] != 1000 {
		t.Fatalf("refused requests changed the upload: %v %v", after, err)
	}
	if _, err := send(last+100, chunk-100, false); err != nil {
		t.Fatal(err)
	}
	for off := chunk; off < partSize; off += chunk {
		final := off+chunk == partSize
		done, err := send(off, chunk, final)
		if err != nil {
			t.Fatal(err)
		}
		if final {
			if sum := sha256.Sum256(file); done.MediaId == "" || !bytes.Equal(done.Sha256, sum[:]) {
				t.Fatalf("completed as %v", done)
			}
			var got []byte
			for len(got) < len(file) {
				d, err := st.Download(t.Context(), &wire.DownloadMedia{MediaId: done.MediaId, Offset: uint64(len(got))})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d.Data...)
			}
			if !bytes.Equal(got, file) {
				t.Fatal("the joined media differs from the file")
			}
			again, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: id, Offset: total, Final: true})
			if err != nil || again.MediaId != done.MediaId {
				t.Fatalf("final again: %v %v", again, err)
			}
		}
	}
	if _, err := os.Stat(st.PartialPath(id)); !os.IsNotExist(err) {
		t.Fatalf("the parts' folder is still there: %v", err)
	}

	stale, err := st.Start(t.Context(), u.ID, "DEV", &wire.UploadMedia{TotalSize: total, Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: stale.UploadId, Offset: partSize, Data: []byte("part 1")}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour)
	if n, err := st.RunJanitor(t.Context()); n != 1 || err != nil {
		t.Fatalf("janitor: %d %v, want 1 abandoned upload removed", n, err)
	}
	if _, err := os.Stat(st.PartialPath(stale.UploadId)); !os.IsNotExist(err) {
		t.Fatalf("an abandoned upload's parts are still there: %v", err)
	}
}

// TestPartSizeFor: parts are 256 KiB up to 16 MiB, then larger, at most 64
// of them, each a multiple of 64 KiB, covering the file.
func TestPartSizeFor(t *testing.T) {
	for _, c := range []struct{ total, want uint64 }{
		{1, 256 << 10}, {16 << 20, 256 << 10}, {16<<20 + 1, 320 << 10}, {100 << 20, 1600 << 10}, {1 << 30, 16 << 20},
	} {
		ps := PartSizeFor(c.total)
		if ps != c.want || ps%partAlign != 0 || numParts(c.total) > maxParts || uint64(numParts(c.total))*ps < c.total {
			t.Errorf("total %d: part size %d (%d parts), want %d", c.total, ps, numParts(c.total), c.want)
		}
	}
}
