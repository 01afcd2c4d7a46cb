package homeserver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"hearth/homeserver/wire"
)

// pattern is the content the fuzzer uploads: byte i of every file is
// byte(i*7+3), so any misplaced write shows in a download.
func pattern(off uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off+uint64(i))*7 + 3)
	}
	return b
}

// FuzzMediaRequests drives the media handlers of a real server with
// arbitrary sizes, offsets, lengths and final flags, and checks every
// answer against a model: an append is accepted exactly when it continues
// the upload within its limits, a refusal changes nothing (received and
// the partial file's size), and a completed upload downloads as exactly
// the bytes sent.
func FuzzMediaRequests(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "media")
	const maxBytes, maxChunk = 1 << 20, 40_000
	h := newHarness(f, Config{Media: MediaConfig{Dir: dir, MaxBytes: maxBytes, MaxChunkBytes: maxChunk, Quota: -1, MaxOpen: 1 << 30, JanitorEvery: -1}})
	c, _ := h.firstDevice("fuzz")
	f.Add(uint32(100), uint64(0), uint16(100), true, uint64(0), uint16(0), false, uint64(0), uint64(0))
	f.Add(uint32(70_000), uint64(0), uint16(39_999), false, uint64(39_999), uint16(30_001), true, uint64(69_000), uint64(5000))
	f.Add(uint32(50), uint64(10), uint16(10), false, uint64(0), uint16(60), true, uint64(51), uint64(1))
	f.Add(uint32(1<<20+1), uint64(0), uint16(1), false, uint64(1), uint16(1), false, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, total32 uint32, off1 uint64, n1 uint16, final1 bool, off2 uint64, n2 uint16, final2 bool, doff, dlen uint64) {
		c.t = t // the harness client reports through the running target
		total := uint64(total32)
		r := c.call(upload("", total, 0, nil, false))
		if total == 0 || total > maxBytes {
			if r.GetError() == nil {
				t.Fatalf("start of %d bytes accepted", total)
			}
			return
		}
		up := r.GetUploadMedia()
		if up == nil {
			t.Fatalf("start: %v", r)
		}
		id := up.UploadId
		var received uint64
		complete := ""
		for _, step := range []struct {
			off   uint64
			n     int
			final bool
		}{{off1, int(n1), final1}, {off2, int(n2), final2}} {
			var ok, appends bool
			switch {
			case complete != "": // only a repeated final or a status request, without data
				ok = step.n == 0
			case step.n == 0 && !step.final: // a status request, at any offset
				ok = true
			default:
				ok = step.off == received && step.n <= maxChunk && received+uint64(step.n) <= total &&
					(!step.final || received+uint64(step.n) == total)
				appends = ok
			}
			r := c.call(upload(id, 0, step.off, pattern(step.off, step.n), step.final))
			if ok != (r.GetError() == nil) {
				t.Fatalf("append at %d of %d (final %v) with %d held of %d: answer %v, model says ok=%v",
					step.off, step.n, step.final, received, total, r, ok)
			}
			if r.GetError() == nil {
				if appends {
					received += uint64(step.n)
				}
				if got := r.GetUploadMedia().GetReceived(); got != received {
					t.Fatalf("received %d, model %d", got, received)
				}
				if m := r.GetUploadMedia().GetMediaId(); m != "" {
					complete = m
				}
			}
			if complete == "" {
				fi, err := os.Stat(filepath.Join(dir, "partial", id))
				if err != nil || uint64(fi.Size()) != received {
					t.Fatalf("partial file: %v, size %d, model %d", err, fi.Size(), received)
				}
			}
		}
		if complete == "" {
			return
		}
		r = c.call(download(complete, doff, dlen))
		if doff > total {
			if r.GetError().GetCode() != wire.Code_CODE_BAD_REQUEST {
				t.Fatalf("download past the end: %v", r)
			}
			return
		}
		d := r.GetMediaData()
		want := min(total-doff, maxChunk)
		if dlen > 0 {
			want = min(want, dlen)
		}
		if d == nil || uint64(len(d.Data)) != want || d.TotalSize != total || !bytes.Equal(d.Data, pattern(doff, int(want))) {
			t.Fatalf("download %d+%d of %d: got %d bytes (%v)", doff, dlen, total, len(d.GetData()), r.GetError())
		}
	})
}
