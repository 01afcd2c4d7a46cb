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
// It bounds one MLS message plus its envelope; media travels on its own streams.
const DefaultMaxFrame = 1 << 20

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
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return nil, fmt.Errorf("wire: read frame body: %w", io.ErrUnexpectedEOF)
	}
	return fr.buf, nil
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
