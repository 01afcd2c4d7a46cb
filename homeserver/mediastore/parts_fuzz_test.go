package mediastore

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// FuzzUploadInParts drives an upload in parts with arbitrary requests
// (part, offset around where the part goes on, length, final) and checks
// every answer against a model of the parts: a request is accepted exactly
// when it continues its part within the part and the request limit (a
// final one only when every part is then complete), a refusal changes
// nothing, and a completed upload downloads as exactly the bytes sent.
// Each op is 5 bytes: part, offset delta (int8), length (uint16, 0xffff:
// the rest of the part in requests of the limit), flags (bit 0: final).
func FuzzUploadInParts(f *testing.F) {
	dir := f.TempDir()
	db, err := storage.Open(filepath.Join(dir, "h.db"), storage.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	u := &storage.User{Name: "fuzz", PassHash: "x", CreatedMs: 1}
	if err := db.Write(f.Context(), func(tx *storage.Tx) error { return tx.InsertUser(u) }); err != nil {
		f.Fatal(err)
	}
	const maxChunk = 40_000
	cfg := Config{MaxBytes: 4 << 20, MaxChunkBytes: maxChunk, MaxOpen: 1 << 30, Quota: -1}.WithDefaults(1 << 20)
	st, err := Open(cfg, Deps{DB: db, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(100), []byte{0, 0, 0, 100, 1})
	f.Add(uint32(minPartSize+10), []byte{1, 0, 0, 10, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 1})
	f.Add(uint32(2*minPartSize+7), []byte{2, 0, 0, 7, 0, 0, 0, 0xff, 0xff, 0, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 1})
	f.Add(uint32(minPartSize+10), []byte{0, 5, 0, 10, 0, 1, 0xff, 0, 10, 0, 1, 0, 0, 11, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, total32 uint32, ops []byte) {
		total := uint64(total32)
		if total == 0 || total > uint64(cfg.MaxBytes) || len(ops) > 200 {
			return
		}
		up, err := st.Start(t.Context(), u.ID, "DEV", &wire.UploadMedia{TotalSize: total, Parts: true})
		if err != nil {
			t.Fatal(err)
		}
		id := up.UploadId
		held := make([]uint64, numParts(total))
		full := func(i int, h uint64) bool { s, e := partRange(total, i); return h == e-s }
		complete := ""
		send := func(off uint64, n int, final bool) {
			var ok bool
			part := -1
			switch {
			case complete != "": // without data: the same answer, whatever the offset
				ok = n == 0
			case n == 0 && !final:
				ok = true
			case n == 0:
				ok = off == total
			default:
				part = int(min(off/PartSizeFor(total), uint64(len(held)-1)))
				s, e := partRange(total, part)
				ok = off < total && off == s+held[part] && uint64(n) <= maxChunk && off+uint64(n) <= e
			}
			if ok && final {
				for i, h := range held {
					if i == part {
						h += uint64(n)
					}
					ok = ok && (complete != "" || full(i, h))
				}
			}
			data := make([]byte, n)
			for k := range data {
				data[k] = byte((off+uint64(k))*7 + 3)
			}
			r, err := st.Append(t.Context(), "DEV", &wire.UploadMedia{UploadId: id, Offset: off, Data: data, Final: final})
			if ok != (err == nil) {
				t.Fatalf("%d bytes at %d (final %v), parts hold %v of %d: err %v, model says ok=%v", n, off, final, held, total, err, ok)
			}
			if err != nil {
				return
			}
			if part >= 0 {
				held[part] += uint64(n)
			}
			if r.GetMediaId() != "" {
				complete = r.GetMediaId()
				return
			}
			if !slices.Equal(r.GetPartReceived(), held) {
				t.Fatalf("parts hold %v, model %v", r.GetPartReceived(), held)
			}
		}
		for ; len(ops) >= 5; ops = ops[5:] {
			i := int(ops[0]) % len(held)
			s, e := partRange(total, i)
			off := uint64(int64(s+held[i]) + int64(int8(ops[1])))
			n := int(ops[2])<<8 | int(ops[3])
			final := ops[4]&1 == 1
			if n == 0xffff { // the rest of part i
				for at := s + held[i]; at < e && complete == ""; at = s + held[i] {
					send(at, int(min(maxChunk, e-at)), false)
				}
				continue
			}
			if ops[1] == 0x80 { // the end: a final without data
				off = total
			}
			send(off, n, final)
		}
		if complete == "" {
			return
		}
		var got []byte
		for uint64(len(got)) < total {
			d, err := st.Download(t.Context(), &wire.DownloadMedia{MediaId: complete, Offset: uint64(len(got))})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d.Data...)
		}
		want := make([]byte, total)
		for k := range want {
			want[k] = byte(uint64(k)*7 + 3)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("the completed media differs from the bytes sent")
		}
	})
}
