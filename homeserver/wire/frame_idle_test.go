package wire

import (
	"bytes"
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
// waits, so an idle session keeps only the small read buffer.
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
		if got := r.r.Size(); got != readBufSize {
			t.Fatalf("read buffer %d bytes, want %d", got, readBufSize)
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
