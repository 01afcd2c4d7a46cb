package loadgen

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"hearth/client/store"
	"hearth/keys/media"
)

// MediaParams configure the media workload.
type MediaParams struct {
	Size    int64         // plaintext bytes per file
	Files   int           // files sent one after the other
	Timeout time.Duration // longest one file may take (upload, delivery of its message, download)
	// Connections is what the fleet's devices use per file
	// (Config.MediaConnections), for the report only.
	Connections int
}

// MediaFigures are the media workload's results. Throughput is the
// encrypted bytes that cross the network (SealedBytes) per second.
type MediaFigures struct {
	Files        int     `json:"files"`
	FileBytes    int64   `json:"file_bytes"`   // plaintext per file
	SealedBytes  int64   `json:"sealed_bytes"` // ciphertext per file: what is uploaded and downloaded
	Upload       Latency `json:"upload"`       // client.QueueFile: encrypt to the profile, upload
	Download     Latency `json:"download"`     // client.FetchMedia: download, check the hash, decrypt
	UploadMBps   float64 `json:"upload_mb_per_second"`
	DownloadMBps float64 `json:"download_mb_per_second"`
}

// Media logs in two users; the first sends Files files of Size random
// bytes to the second, one after the other, which downloads each as soon
// as its message arrived and checks it byte for byte. Upload and download
// are timed separately (the message's delivery in between is not).
func Media(ctx context.Context, f *Fleet, p MediaParams) (*Report, error) {
	if p.Size <= 0 || p.Files <= 0 {
		return nil, errors.New("loadgen: media needs a positive file size and number of files")
	}
	if p.Timeout <= 0 {
		p.Timeout = 5 * time.Minute
	}
	now := f.cfg.Now
	r := &Report{Workload: "media", Run: f.run, Machine: machine(),
		Params: map[string]any{"file_size": p.Size, "files": p.Files, "timeout": p.Timeout.String(), "connections": p.Connections}}
	fig := &MediaFigures{FileBytes: p.Size, SealedBytes: media.SealedSize(p.Size)}
	r.Media = fig
	t0 := now()
	devs, err := f.Add(ctx, 2)
	if err != nil {
		return nil, err
	}
	from, to := devs[0], devs[1]
	got := make(chan store.Message, p.Files)
	rctx, stop := context.WithCancel(ctx)
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- to.C.Receive(rctx, 0, func(m store.Message) error {
			if m.Media != nil {
				got <- m
			}
			return nil
		})
	}()
	defer func() { stop(); <-recvDone }()
	r.Setup = now().Sub(t0).Seconds()

	srv, self := f.watch()
	start := now()
	var ups, downs []time.Duration
	var upTotal, downTotal time.Duration
	for i := range p.Files {
		up, down, err := f.mediaOne(ctx, from, to, got, p, i)
		if err != nil {
			r.SendErrors++
			r.Notes = append(r.Notes, fmt.Sprintf("file %d: %v", i, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		r.Sent, r.Acked, r.Delivered = r.Sent+1, r.Acked+1, r.Delivered+1
		ups, downs = append(ups, up), append(downs, down)
		upTotal, downTotal = upTotal+up, downTotal+down
		fmt.Fprintf(f.cfg.Progress, "[media] file %d/%d: upload %.2fs, download %.2fs\n", i+1, p.Files, up.Seconds(), down.Seconds())
	}
	end := now()
	fig.Files = len(ups)
	fig.Upload, fig.Download = Summarize(ups), Summarize(downs)
	if upTotal > 0 {
		fig.UploadMBps = float64(fig.SealedBytes) * float64(fig.Files) / upTotal.Seconds() / 1e6
	}
	if downTotal > 0 {
		fig.DownloadMBps = float64(fig.SealedBytes) * float64(fig.Files) / downTotal.Seconds() / 1e6
	}
	r.Seconds = end.Sub(start).Seconds()
	if srv != nil {
		if ps, err := srv.finish(end); err == nil {
			r.Server = &ps
		}
	}
	r.Bench, _ = self.finish(end)
	r.Machine.LoadEnd = loadavg()
	r.DialRetries = f.DialRetries()
	if r.SendErrors > 0 {
		return r, fmt.Errorf("loadgen: media: %d of %d files failed (notes in the report)", r.SendErrors, p.Files)
	}
	return r, ctx.Err()
}

// mediaOne sends file i from one device to the other and downloads it
// there; it returns the upload's and the download's durations.
func (f *Fleet) mediaOne(ctx context.Context, from, to *Device, got <-chan store.Message, p MediaParams, i int) (up, down time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	path := filepath.Join(from.Profile, fmt.Sprintf("media-%s-%d.bin", f.run, i))
	sum, err := writeRandomFile(path, p.Size)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	t := f.cfg.Now()
	id, err := from.C.QueueFile(ctx, to.Address, path, "application/octet-stream")
	if err != nil {
		return 0, 0, fmt.Errorf("upload: %w", err)
	}
	up = f.cfg.Now().Sub(t)
	if err := from.C.Flush(ctx, id); err != nil {
		return 0, 0, fmt.Errorf("send the message: %w", err)
	}
	var m store.Message
	for m.ID != id {
		select {
		case m = <-got:
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("the message %s did not arrive: %w", id, ctx.Err())
		}
	}
	h := sha256.New()
	t = f.cfg.Now()
	if err := to.C.FetchMedia(ctx, *m.Media, h); err != nil {
		return 0, 0, fmt.Errorf("download: %w", err)
	}
	down = f.cfg.Now().Sub(t)
	if [32]byte(h.Sum(nil)) != sum {
		return 0, 0, errors.New("the downloaded file differs from the one sent")
	}
	return up, down, nil
}

// writeRandomFile writes size random bytes to path and returns their SHA-256.
func writeRandomFile(path string, size int64) ([32]byte, error) {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return [32]byte{}, fmt.Errorf("loadgen: %w", err)
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(fh, h), rand.Reader, size)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return [32]byte{}, fmt.Errorf("loadgen: write test file: %w", err)
	}
	return [32]byte(h.Sum(nil)), nil
}
