package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"
)

// DefaultMaxFrame is the largest frame accepted unless configured otherwise.
// It bounds one MLS message plus its envelope: the largest is a commit of a
// 1,024-device group on the post-quantum suite with its Welcome and
// GroupInfo (ratchet tree), a few MB (docs/decisions/0004-large-groups.md).
// Readers do not allocate a frame's declared length up front, so the limit
// costs memory only when a peer actually sends that many bytes. Media
// travels on its own streams.
const DefaultMaxFrame = 8 << 20

// frameChunk is how much a FrameReader allocates before it has read
// anything of a frame body, and keepBuf the largest buffer it (or a
// FrameWriter) keeps between frames; a bigger one is dropped after use so
// that one large frame does not pin megabytes to an idle connection.
const (
	frameChunk = 64 << 10
	keepBuf    = 256 << 10
)

// ErrFrameTooLarge is returned when a frame's declared length exceeds the limit.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// FrameReader reads length-delimited frames from a byte stream.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewFrameReader returns a reader refusing frames over max bytes (DefaultMaxFrame if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 16<<10), max: max}
}

// ReadFrame returns the next frame's bytes. The slice is valid until the next call.
// A frame over the limit returns ErrFrameTooLarge without reading its body; the
// stream is then out of sync and must be closed.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	n, err := binary.ReadUvarint(fr.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("wire: read frame length: %w", err)
	}
	if n > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, fr.max)
	}
	if cap(fr.buf) > keepBuf {
		fr.buf = nil // the previous frame was large
	}
	b, err := readBody(fr.r, fr.buf[:0], int(n))
	fr.buf = b
	if err != nil {
		return nil, fmt.Errorf("wire: read frame body: %w", io.ErrUnexpectedEOF)
	}
	return b, nil
}

// readBody reads n bytes appended to buf, growing buf as bytes arrive (by
// at most what has been read so far, and at least frameChunk), so that a
// length prefix that lies costs memory only in proportion to the bytes
// actually sent.
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grow := min(n-len(buf), max(len(buf), frameChunk))
			nb := make([]byte, len(buf), len(buf)+grow)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// ReadMessage reads the next frame and unmarshals it into m.
func (fr *FrameReader) ReadMessage(m proto.Message) error {
	b, err := fr.ReadFrame()
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("wire: decode frame: %w", err)
	}
	return nil
}

// FrameWriter writes length-delimited frames; it is safe for concurrent use
// and each WriteMessage call writes exactly one whole frame.
type FrameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	max int
	buf []byte
}

// NewFrameWriter returns a writer refusing frames over max bytes (DefaultMaxFrame if max <= 0).
func NewFrameWriter(w io.Writer, max int) *FrameWriter {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameWriter{w: w, max: max}
}

// WriteMessage marshals m and writes it as one frame.
func (fw *FrameWriter) WriteMessage(m proto.Message) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	size := proto.Size(m)
	if size > fw.max {
		return fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, size, fw.max)
	}
	b := binary.AppendUvarint(fw.buf[:0], uint64(size))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		return fmt.Errorf("wire: encode frame: %w", err)
	}
	fw.buf = b
	if cap(b) > keepBuf {
		fw.buf = nil // written below; not kept for the next frame
	}
	if _, err := fw.w.Write(b); err != nil {
		return fmt.Errorf("wire: write frame: %w", err)
	}
	return nil
}

// AppendFrame appends m as one length-delimited frame to b.
func AppendFrame(b []byte, m proto.Message) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(proto.Size(m)))
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}
