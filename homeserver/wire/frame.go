package wire

import (
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
// FrameWriter) returns to the shared pool after a frame; a bigger one is
// dropped after use so that one large frame does not pin megabytes.
//
// peekSize is the read buffer a FrameReader keeps inside itself: it reads
// length prefixes and small frames (acks, pings), several per Read when
// they arrive together, while the rest of a larger body is read straight
// into that body's pooled buffer. An idle session waits inside a Read on
// this array, so it is all the buffer an idle session holds (a 1 KiB
// bufio.Reader before, 16 KiB before that; docs/transport.md "Memory").
const (
	frameChunk = 64 << 10
	keepBuf    = 256 << 10
	peekSize   = 64
)

// ErrFrameTooLarge is returned when a frame's declared length exceeds the limit.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// ErrMalformedFrame is wrapped by ReadMessage when a frame does not decode.
// On a stream (reliable, ordered) that is a fault of the peer or of the
// transport, never of the network: the stream is out of step from there.
var ErrMalformedFrame = errors.New("wire: decode frame")

// bufPool holds frame buffers between frames for every reader and writer
// of the process, so that an idle session keeps none of its own.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf returns *p to the pool unless it is large; p is reset either way.
func putBuf(p *[]byte) {
	if p == nil {
		return
	}
	if cap(*p) > keepBuf {
		*p = nil
	}
	*p = (*p)[:0]
	bufPool.Put(p)
}

// FrameReader reads length-delimited frames from a byte stream. Between
// frames it holds no buffer but a small array of its own; frame bodies
// live in pooled buffers that go back to the pool when the next frame is
// asked for.
type FrameReader struct {
	r   io.Reader
	max int
	buf *[]byte // the last frame's body, from bufPool; nil between frames
	// win holds the bytes read from r and not yet consumed, a part of peek.
	win  []byte
	err  error // from r, returned once win is consumed
	peek [peekSize]byte
}

// NewFrameReader returns a reader refusing frames over max bytes (DefaultMaxFrame if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: r, max: max}
}

// ReadFrame returns the next frame's bytes. The slice is valid until the next call.
// A frame over the limit returns ErrFrameTooLarge without reading its body; the
// stream is then out of sync and must be closed.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	putBuf(fr.buf) // the caller is done with the previous frame
	fr.buf = nil
	var err error
	if len(fr.win) == 0 {
		err = fr.fill() // an idle session waits here, one call deep (homeserver.ServeStream)
	}
	var n uint64
	if err == nil {
		n, err = fr.readLength()
	}
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("wire: read frame length: %w", err)
	}
	if n > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, fr.max)
	}
	return fr.readFrameBody(int(n))
}

// readLength reads a frame's length prefix (an unsigned varint, as
// binary.ReadUvarint): io.EOF before its first byte, io.ErrUnexpectedEOF
// within it.
func (fr *FrameReader) readLength() (uint64, error) {
	var x uint64
	var s uint
	for i := range binary.MaxVarintLen64 {
		if len(fr.win) == 0 {
			if err := fr.fill(); err != nil {
				if i > 0 && err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		b := fr.win[0]
		fr.win = fr.win[1:]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, errOverflow
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, errOverflow
}

var errOverflow = errors.New("varint overflows a 64-bit integer")

// fill reads into the reader's own small array; win is empty. This is
// where an idle session waits, holding no other buffer.
func (fr *FrameReader) fill() error {
	if fr.err != nil {
		return fr.err
	}
	for range 100 { // an io.Reader may return 0, nil; bufio.Reader gives up after 100 too
		n, err := fr.r.Read(fr.peek[:])
		if n > 0 {
			fr.win, fr.err = fr.peek[:n], err
			return nil
		}
		if err != nil {
			fr.err = err
			return err
		}
	}
	fr.err = io.ErrNoProgress
	return fr.err
}

// readFrameBody reads an n-byte body into a pooled buffer: the bytes
// already read, then the rest straight from the stream.
func (fr *FrameReader) readFrameBody(n int) ([]byte, error) {
	p := getBuf()
	b := (*p)[:0]
	k := min(n, len(fr.win))
	if k > cap(b) {
		b = make([]byte, 0, min(n, frameChunk)) // k <= min(n, peekSize)
	}
	b = append(b, fr.win[:k]...)
	fr.win = fr.win[k:]
	var err error
	if len(b) < n {
		if fr.err != nil {
			err = fr.err
		} else {
			b, err = readBody(fr.r, b, n)
			if err != nil {
				fr.err = err
			}
		}
	}
	*p = b
	fr.buf = p
	if err != nil {
		return nil, fmt.Errorf("wire: read frame body: %w", io.ErrUnexpectedEOF)
	}
	return b, nil
}

// held is the capacity of the body buffer the reader holds (tests).
func (fr *FrameReader) held() int {
	if fr.buf == nil {
		return 0
	}
	return cap(*fr.buf)
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
		return fmt.Errorf("%w: %w", ErrMalformedFrame, err)
	}
	return nil
}

// FrameWriter writes length-delimited frames; it is safe for concurrent use
// and each WriteMessage call writes exactly one whole frame. It marshals
// into a pooled buffer and keeps none between frames.
type FrameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	max int
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
	size := proto.Size(m)
	if size > fw.max {
		return fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, size, fw.max)
	}
	p := getBuf()
	defer putBuf(p)
	b := binary.AppendUvarint((*p)[:0], uint64(size))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	*p = b
	if err != nil {
		return fmt.Errorf("wire: encode frame: %w", err)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
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
