package homeserver

import (
	"testing"
)

// BenchmarkMediaUpload: one 8 MiB upload in 256 KiB requests per op over
// a pipe (writes, final fsync and hash); bytes/s is the upload rate.
func BenchmarkMediaUpload(b *testing.B) {
	h := newHarness(b, Config{Media: MediaConfig{Quota: -1, MaxOpen: 1 << 20}})
	c, _ := h.firstDevice("alice")
	file := randBytes(8 << 20)
	const step = 256 << 10
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		id := c.must(upload("", uint64(len(file)), 0, nil, false)).GetUploadMedia().UploadId
		for off := 0; off < len(file); off += step {
			end := min(off+step, len(file))
			c.must(upload(id, 0, uint64(off), file[off:end], end == len(file)))
		}
	}
}

// BenchmarkMediaDownload: the same file read back in 256 KiB ranges.
func BenchmarkMediaDownload(b *testing.B) {
	h := newHarness(b, Config{})
	c, _ := h.firstDevice("alice")
	file := randBytes(8 << 20)
	const step = 256 << 10
	id := c.must(upload("", uint64(len(file)), 0, nil, false)).GetUploadMedia().UploadId
	var mediaID string
	for off := 0; off < len(file); off += step {
		end := min(off+step, len(file))
		mediaID = c.must(upload(id, 0, uint64(off), file[off:end], end == len(file))).GetUploadMedia().MediaId
	}
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if got := fetchAll(c, mediaID, step); len(got) != len(file) {
			b.Fatalf("downloaded %d bytes", len(got))
		}
	}
}
