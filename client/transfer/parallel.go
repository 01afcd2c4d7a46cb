package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"hearth/client/session"
	"hearth/homeserver/wire"
	"hearth/keys/media"
)

// One QUIC connection's loss-based congestion control holds a transfer on
// a lossy link to a few tens of KB/s (docs/benchmarks.md, "Poor
// networks"), however fast the link. A large file therefore moves over
// several connections of the device at once, each with its own congestion
// window: downloads fetch ranges in parallel and write them in order;
// uploads go in parts (wire.UploadMedia.parts), each part sent in
// sequence over one of the connections.

// DefaultParallelMin is the smallest ciphertext sent or fetched over
// several connections (Config.ParallelMin).
const DefaultParallelMin = 1 << 20

// Lane is one extra connection of the device opened for a transfer.
type Lane struct {
	Call, CallIdempotent CallFunc
	Close                func()
}

// parallel reports how many connections a transfer of size ciphertext
// bytes uses (1: only the session's).
func (t *Transfer) parallel(size int64) int {
	if t.cfg.OpenLane == nil || t.cfg.Connections <= 1 || size < t.cfg.ParallelMin {
		return 1
	}
	return t.cfg.Connections
}

// lanes returns the session's lane and up to n-1 extra ones (fewer if
// opening one fails); close closes the extra ones.
func (t *Transfer) lanes(ctx context.Context, n int) ([]Lane, func()) {
	ls := []Lane{{Call: t.cfg.Call, CallIdempotent: t.cfg.CallIdempotent}}
	for range n - 1 {
		l, err := t.cfg.OpenLane(ctx)
		if err != nil {
			t.cfg.Log.Debug("media: an extra connection failed", "err", err)
			break
		}
		ls = append(ls, l)
	}
	return ls, func() {
		for _, l := range ls[1:] {
			l.Close()
		}
	}
}

// work runs do for every job from next over the lanes, one job at a time
// per lane, until next is closed; the first error ends it.
func work(ctx context.Context, lanes []Lane, next <-chan int, do func(context.Context, Lane, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Go(func() {
			for {
				var j int
				var ok bool
				select {
				case j, ok = <-next:
				case <-ctx.Done():
					return
				}
				if !ok {
					return
				}
				if err := do(ctx, l, j); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// jobsOf is a closed channel holding jobs.
func jobsOf(jobs []int) <-chan int {
	c := make(chan int, len(jobs))
	for _, j := range jobs {
		c <- j
	}
	close(c)
	return c
}

// uploadParts sends the parts st says are missing over several
// connections, then the final request; st is the server's answer about the
// upload (a start or a status).
func (t *Transfer) uploadParts(ctx context.Context, f io.ReaderAt, sealed media.Sealed, st *wire.UploadMediaOK) (string, error) {
	const op = "client.upload"
	total, ps, id := uint64(sealed.Size), st.GetPartSize(), st.GetUploadId()
	nparts := int((total + ps - 1) / ps)
	if err := checkParts(st, total, nparts); err != nil {
		return "", err
	}
	var missing []int
	var held uint64
	for i, h := range st.GetPartReceived() {
		held += h
		if start, end := partRange(total, ps, i); start+h < end {
			missing = append(missing, i)
		}
	}
	if p, ok := f.(*progressReaderAt); ok {
		p.countFrom(int64(held)) // parts go at once: count bytes, not the furthest offset
	}
	lanes, closeLanes := t.lanes(ctx, min(t.parallel(sealed.Size), len(missing)))
	defer closeLanes()
	err := work(ctx, lanes, jobsOf(missing), func(ctx context.Context, l Lane, i int) error {
		return t.uploadPart(ctx, l, f, id, total, ps, nparts, i, st.GetPartReceived()[i])
	})
	if err != nil {
		return "", err
	}
	for {
		r, err := t.cfg.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: &wire.UploadMedia{UploadId: id, Offset: total, Final: true}}})
		if err != nil {
			if !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
				return "", err
			}
			if r, err = t.uploadStatus(ctx, id); err != nil {
				return "", err
			}
			if r.GetUploadMedia().GetMediaId() == "" {
				continue // the final request was lost: send it again
			}
		}
		if up := r.GetUploadMedia(); up.GetMediaId() != "" {
			return checkUploaded(up, sealed)
		}
		return "", fmt.Errorf("%s: unexpected answer to the final request %T", op, r.GetBody())
	}
}

// checkParts checks the server's account of an upload in parts.
func checkParts(st *wire.UploadMediaOK, total uint64, nparts int) error {
	if st.GetTotalSize() != total || len(st.GetPartReceived()) != nparts {
		return fmt.Errorf("client.upload: the server's upload in parts does not match the file (%d bytes in %d parts, want %d in %d)",
			st.GetTotalSize(), len(st.GetPartReceived()), total, nparts)
	}
	for i, h := range st.GetPartReceived() {
		if start, end := partRange(total, st.GetPartSize(), i); h > end-start {
			return fmt.Errorf("client.upload: the server holds %d bytes of part %d of %d", h, i, end-start)
		}
	}
	return nil
}

func partRange(total, ps uint64, i int) (start, end uint64) {
	start = uint64(i) * ps
	return start, min(start+ps, total)
}

// uploadPart sends part i from what the server holds of it (held) over
// l; after a lost connection it asks the server where the part stands.
func (t *Transfer) uploadPart(ctx context.Context, l Lane, f io.ReaderAt, id string, total, ps uint64, nparts, i int, held uint64) error {
	const op = "client.upload"
	start, end := partRange(total, ps, i)
	buf := make([]byte, uploadChunk)
	for off := start + held; off < end; {
		n := min(uint64(len(buf)), end-off)
		if _, err := f.ReadAt(buf[:n], int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			return fmt.Errorf("%s: read ciphertext: %w", op, err)
		}
		r, err := l.Call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: &wire.UploadMedia{UploadId: id, Offset: off, Data: buf[:n]}}})
		if err != nil {
			if wire.Is(err, wire.Code_CODE_TOO_LARGE) && len(buf) > minUploadChunk {
				buf = buf[:len(buf)/2]
				continue
			}
			// A refused offset may be a stale view: a request of an
			// earlier run (or connection) the server took after it told
			// where the part stood. Go on from where it stands now, unless
			// that is where this request was.
			stale := wire.Is(err, wire.Code_CODE_BAD_REQUEST)
			if !stale && !errors.Is(err, session.ErrDisconnected) || ctx.Err() != nil {
				return err
			}
			refused := err
			if r, err = l.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: &wire.UploadMedia{UploadId: id}}}); err != nil {
				return err
			}
			if held := r.GetUploadMedia().GetPartReceived(); stale && (len(held) != nparts || start+held[i] == off) {
				return refused
			}
			t.cfg.Log.Debug("upload part resumed", "part", i)
		}
		st := r.GetUploadMedia()
		if st == nil {
			return fmt.Errorf("%s: unexpected answer %T", op, r.GetBody())
		}
		if err := checkParts(st, total, nparts); err != nil {
			return err
		}
		off = start + st.GetPartReceived()[i]
	}
	return nil
}

// downloadParallel is download over several connections: ranges of
// uploadChunk bytes are fetched at once and written to w in order, at
// most two per lane waiting to be written.
func (t *Transfer) downloadParallel(ctx context.Context, mediaID, server string, want int64, w io.Writer, n int) error {
	const op = "client.download"
	nchunks := int((want + uploadChunk - 1) / uploadChunk)
	lanes, closeLanes := t.lanes(ctx, min(n, nchunks))
	defer closeLanes()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Ranges are handed out in order, each once a slot of the window is
	// free (a slot per range handed out and not written yet), so the range
	// to write next always holds one and at most 2 per lane wait in memory.
	window := make(chan struct{}, 2*len(lanes))
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		for k := range nchunks {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	type result struct {
		k    int
		data []byte
	}
	results := make(chan result, nchunks)
	errc := make(chan error, 1)
	go func() {
		errc <- work(ctx, lanes, jobs, func(ctx context.Context, l Lane, k int) error {
			b, err := t.fetchRange(ctx, l, mediaID, server, want, int64(k)*uploadChunk)
			if err != nil {
				return err
			}
			results <- result{k, b}
			return nil
		})
	}()
	pending := map[int][]byte{}
	for next := 0; next < nchunks; {
		select {
		case r := <-results:
			pending[r.k] = r.data
		case err := <-errc:
			if err != nil {
				return err
			}
			errc = nil // every range fetched: the rest are in results
		}
		for b, ok := pending[next]; ok; b, ok = pending[next] {
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			delete(pending, next)
			<-window
			next++
		}
	}
	if errc != nil {
		return <-errc
	}
	return nil
}

// fetchRange reads uploadChunk bytes at off (fewer at the end) over l,
// asking again for what a server with a smaller limit left out.
func (t *Transfer) fetchRange(ctx context.Context, l Lane, mediaID, server string, want, off int64) ([]byte, error) {
	const op = "client.download"
	end := min(off+uploadChunk, want)
	b := make([]byte, 0, end-off)
	for at := off; at < end; {
		r, err := l.CallIdempotent(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{
			DownloadMedia: &wire.DownloadMedia{MediaId: mediaID, Offset: uint64(at), Length: uint64(end - at), Server: server}}})
		if err != nil {
			return nil, err
		}
		d := r.GetMediaData()
		switch {
		case d == nil || d.GetOffset() != uint64(at):
			return nil, fmt.Errorf("%s: unexpected answer", op)
		case d.GetTotalSize() != uint64(want):
			return nil, fmt.Errorf("%s: %w: the server holds %d bytes, the message says %d", op, ErrCorrupt, d.GetTotalSize(), want)
		case len(d.GetData()) == 0:
			return nil, fmt.Errorf("%s: the server's file ended at %d of %d bytes", op, at, want)
		case at+int64(len(d.GetData())) > end:
			return nil, fmt.Errorf("%s: the server sent more than asked", op)
		}
		b = append(b, d.GetData()...)
		at += int64(len(d.GetData()))
	}
	return b, nil
}
