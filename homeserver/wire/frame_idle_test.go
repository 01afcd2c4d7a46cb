package wire

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// waitingReader serves its frames in one Read, then, on the next Read
// (the reader waiting for more, as an idle session does), records how
// many body bytes the FrameReader holds and reports EOF.
type waitingReader struct {
	data   []byte
	fr     *FrameReader
	waited bool
	held   int
}

func (w *waitingReader) Read(p []byte) (int, error) {
	if len(w.data) > 0 {
		n := copy(p, w.data)
		w.data = w.data[n:]
		return n, nil
	}
	w.waited, w.held = true, w.fr.held()
	return 0, io.EOF
}

// TestFrameReaderHoldsNothingWhileWaiting: once a frame was handed out and
// the next is asked for, the reader gives the body buffer back before it
// waits, so an idle session keeps only the reader's own small array.
func TestFrameReaderHoldsNothingWhileWaiting(t *testing.T) {
	for _, size := range []int{10, 900, 5000, 300 << 10} {
		b, err := AppendFrame(nil, &ClientFrame{Id: 7, Body: &ClientFrame_Send{Send: &Send{Payload: bytes.Repeat([]byte{1}, size)}}})
		if err != nil {
			t.Fatal(err)
		}
		src := &waitingReader{data: b}
		r := NewFrameReader(src, 0)
		src.fr = r
		var m ClientFrame
		if err := r.ReadMessage(&m); err != nil || len(m.GetSend().GetPayload()) != size {
			t.Fatalf("size %d: %v, %d bytes", size, err, len(m.GetSend().GetPayload()))
		}
		if r.held() < size {
			t.Fatalf("size %d: the frame's body is not held while the caller uses it (%d bytes)", size, r.held())
		}
		if _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("size %d: got %v, want EOF", size, err)
		}
		if !src.waited || src.held != 0 {
			t.Fatalf("size %d: waited %v holding %d body bytes, want 0", size, src.waited, src.held)
		}
	}
}

// BenchmarkFrameReadStream reads 200-byte frames from a stream that
// returns many of them per Read, as a busy QUIC stream does: the small
// read buffer must still batch them.
func BenchmarkFrameReadStream(b *testing.B) {
	m := &ServerFrame{Body: &ServerFrame_Delivery{Delivery: &Delivery{Seq: 1, ConversationId: "abc@a.example", Sender: "alice@a.example/D1", MessageId: "m", Payload: make([]byte, 200)}}}
	var stream []byte
	const frames = 1000
	for range frames {
		var err error
		if stream, err = AppendFrame(stream, m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewFrameReader(bytes.NewReader(stream), 0)
		for range frames {
			if _, err := r.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// chunkReader returns its data in reads of the given sizes, in turn (0:
// a read that returns nothing, never twice in a row), and its error with
// the last bytes.
type chunkReader struct {
	data     []byte
	sizes    []byte
	i        int
	wasEmpty bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])
		c.i++
		if n == 0 && c.wasEmpty {
			n = 1
		}
		c.wasEmpty = n == 0
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	if len(c.data) == 0 {
		return n, io.EOF // the last bytes come with the error, as some readers do
	}
	return n, nil
}

// refFrames splits data into frames as the wire format says, with
// binary.Uvarint: the frames and whether the input ended cleanly.
func refFrames(data []byte, maxFrame int) ([][]byte, bool) {
	var frames [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(maxFrame) || n > uint64(len(data)-k) {
			return frames, false
		}
		frames = append(frames, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return frames, true
}

// FuzzFrameReaderChunks: however the stream's bytes are split across
// reads (one byte, a prefix cut in two, many frames in one read, the last
// bytes returned with io.EOF), the reader returns the frames the wire
// format defines, then io.EOF exactly when the input ended on a frame
// boundary.
func FuzzFrameReaderChunks(f *testing.F) {
	var stream []byte
	for _, size := range []int{0, 1, 63, 64, 65, 200, 5000} {
		stream = binary.AppendUvarint(stream, uint64(size))
		stream = append(stream, bytes.Repeat([]byte{byte(size)}, size)...)
	}
	f.Add(stream, []byte{1})
	f.Add(stream, []byte{3, 0, 100})
	f.Add(stream, []byte{64})
	f.Add(stream, []byte{})
	f.Add([]byte{0x80, 0x80, 0x01}, []byte{1})
	f.Add(bytes.Repeat([]byte{0xff}, 11), []byte{2})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		const maxFrame = 1 << 17
		want, clean := refFrames(data, maxFrame)
		r := NewFrameReader(&chunkReader{data: data, sizes: sizes}, maxFrame)
		for i, w := range want {
			got, err := r.ReadFrame()
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(w))
			}
		}
		_, err := r.ReadFrame()
		if clean != (err == io.EOF) || err == nil {
			t.Fatalf("after %d frames: %v (input ended on a frame boundary: %v)", len(want), err, clean)
		}
	})
}
