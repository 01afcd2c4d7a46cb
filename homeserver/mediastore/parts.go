package mediastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// An upload in parts (wire.UploadMedia.parts) is cut into parts of
// PartSizeFor(total) bytes, the last one shorter: 256 KiB (one request of
// data at the default limit) up to 16 MiB, then larger so that there are
// at most maxParts. The parts follow from the total size alone, so nothing
// beyond the folder partial/UPLOAD_ID (one file per part, named by its
// index, its size what the part holds) records them.
const (
	minPartSize = 256 << 10
	maxParts    = 64
	partAlign   = 64 << 10
)

// PartSizeFor is the part size of an upload in parts of total bytes.
func PartSizeFor(total uint64) uint64 {
	ps := (total + maxParts - 1) / maxParts
	ps = (ps + partAlign - 1) / partAlign * partAlign
	return max(ps, minPartSize)
}

// numParts is how many parts an upload of total bytes has.
func numParts(total uint64) int {
	ps := PartSizeFor(total)
	return int((total + ps - 1) / ps)
}

// partRange is where part i of an upload of total bytes starts and ends.
func partRange(total uint64, i int) (start, end uint64) {
	ps := PartSizeFor(total)
	start = uint64(i) * ps
	return start, min(start+ps, total)
}

// inParts reports whether an upload is held in parts (its partial path is
// a folder).
func (m *Store) inParts(uploadID string) bool {
	fi, err := os.Stat(m.partialPath(uploadID))
	return err == nil && fi.IsDir()
}

func (m *Store) partPath(uploadID string, i int) string {
	return filepath.Join(m.partialPath(uploadID), strconv.Itoa(i))
}

// partsHeld returns the bytes held of each part (a part not started has
// no file).
func (m *Store) partsHeld(row *storage.Media) ([]uint64, error) {
	held := make([]uint64, numParts(uint64(row.TotalSize)))
	for i := range held {
		fi, err := os.Stat(m.partPath(row.UploadID, i))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			held[i] = uint64(fi.Size())
		}
	}
	return held, nil
}

func partsOK(row *storage.Media, held []uint64) *wire.UploadMediaOK {
	var sum uint64
	for _, h := range held {
		sum += h
	}
	return &wire.UploadMediaOK{UploadId: row.UploadID, Received: sum, TotalSize: uint64(row.TotalSize),
		PartSize: PartSizeFor(uint64(row.TotalSize)), PartReceived: held}
}

// checkPartData validates r's data and final flag against what the parts
// hold; it returns the part the data goes to (-1 without data).
func (m *Store) checkPartData(r *wire.UploadMedia, held []uint64, total uint64) (int, error) {
	const op = "homeserver.UploadMedia"
	n, off := uint64(len(r.GetData())), r.GetOffset()
	part := -1
	if n > 0 {
		if n > uint64(m.cfg.MaxChunkBytes) {
			return 0, wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "%d bytes of data; at most %d per request", n, m.cfg.MaxChunkBytes)
		}
		if off >= total {
			return 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "offset %d is past total_size %d", off, total)
		}
		part = int(off / PartSizeFor(total))
		start, end := partRange(total, part)
		switch {
		case off != start+held[part]:
			return 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "offset %d, but part %d (from %d) holds %d bytes: it goes on at %d", off, part, start, held[part], start+held[part])
		case off+n > end:
			return 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "data would end at %d, past the end of part %d at %d", off+n, part, end)
		}
	} else if r.GetFinal() && off != total {
		return 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "final without data needs offset %d (total_size), not %d", total, off)
	}
	if r.GetFinal() {
		for i, h := range held {
			if i == part {
				h += n
			}
			if start, end := partRange(total, i); h != end-start {
				return 0, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "final, but part %d would hold %d of %d bytes", i, h, end-start)
			}
		}
	}
	return part, nil
}

// appendParts writes r's data into its part and completes the upload if r
// is final. The caller holds the upload's lock.
func (m *Store) appendParts(ctx context.Context, row *storage.Media, r *wire.UploadMedia) (*wire.UploadMediaOK, error) {
	const op = "homeserver.UploadMedia"
	held, err := m.partsHeld(row)
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	total := uint64(row.TotalSize)
	if len(r.GetData()) == 0 && !r.GetFinal() {
		return partsOK(row, held), nil // a status request
	}
	part, err := m.checkPartData(r, held, total)
	if err != nil {
		return nil, err
	}
	if part >= 0 {
		if err := writePart(m.partPath(row.UploadID, part), r.GetData(), int64(held[part])); err != nil {
			return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
		}
		held[part] += uint64(len(r.GetData()))
	}
	if !r.GetFinal() {
		return partsOK(row, held), nil
	}
	if err := m.joinParts(row); err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	sum, err := m.finish(row) // hashes and fsyncs complete/MEDIA_ID
	if err != nil {
		return nil, wire.E(op, wire.Code_CODE_INTERNAL, err)
	}
	if err := m.db.Write(ctx, func(tx *storage.Tx) error { return tx.CompleteMedia(row.UploadID, sum, m.now().UnixMilli()) }); err != nil {
		return nil, mediaErr(op, err)
	}
	row.SHA256 = sum
	return completeOK(row), nil
}

// joinParts writes the parts in order to complete/MEDIA_ID (through a
// file beside the parts, renamed), then removes the parts' folder. A crash
// at any point leaves a state it finishes: the parts (joined again), or
// the complete file (the folder is removed again; finish takes the file).
func (m *Store) joinParts(row *storage.Media) error {
	complete := m.completePath(row.MediaID)
	if _, err := os.Stat(complete); errors.Is(err, os.ErrNotExist) {
		tmp := m.partialPath(row.UploadID) + ".join"
		if err := m.concatParts(row, tmp); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("media join: %w", err)
		}
		if err := os.Rename(tmp, complete); err != nil {
			return fmt.Errorf("media join: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("media join: %w", err)
	}
	if err := os.RemoveAll(m.partialPath(row.UploadID)); err != nil {
		return fmt.Errorf("media join: %w", err)
	}
	return nil
}

func (m *Store) concatParts(row *storage.Media, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	for i := range numParts(uint64(row.TotalSize)) {
		in, err := os.Open(m.partPath(row.UploadID, i))
		if err != nil {
			out.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writePart writes data at off of a part's file, made if new; on a
// failure the file is cut back to off so that nothing changed.
func writePart(path string, data []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Truncate(off)
		f.Close()
		return err
	}
	return f.Close()
}
