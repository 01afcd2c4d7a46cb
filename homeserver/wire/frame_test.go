package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewFrameWriter(&buf, 0)
	in := []*ClientFrame{
		{Id: 1, Body: &ClientFrame_Hello{Hello: &Hello{AccessToken: "t"}}},
		{Id: 2, Body: &ClientFrame_Send{Send: &Send{ConversationId: "c@a", MessageId: "m1", Payload: bytes.Repeat([]byte{7}, 5000)}}},
		{Id: 3, Body: &ClientFrame_Ack{Ack: &Ack{UpToSeq: 99}}},
	}
	for _, m := range in {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewFrameReader(&buf, 0)
	for i, want := range in {
		got := &ClientFrame{}
		if err := r.ReadMessage(got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("frame %d: got %v want %v", i, got, want)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	big := &ClientFrame{Id: 1, Body: &ClientFrame_Send{Send: &Send{Payload: make([]byte, 2000)}}}
	if err := NewFrameWriter(io.Discard, 1000).WriteMessage(big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("writer: got %v, want ErrFrameTooLarge", err)
	}
	b, err := AppendFrame(nil, big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFrameReader(bytes.NewReader(b), 1000).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("reader: got %v, want ErrFrameTooLarge", err)
	}
	// Truncated body.
	if _, err := NewFrameReader(bytes.NewReader(b[:len(b)-1]), 0).ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: got %v, want io.ErrUnexpectedEOF", err)
	}
	// Garbage that is a valid length but not a valid message.
	bad := []byte{3, 0xff, 0xff, 0xff}
	if err := NewFrameReader(bytes.NewReader(bad), 0).ReadMessage(&ClientFrame{}); err == nil {
		t.Fatal("garbage frame decoded without error")
	}
}

func TestErrorKinds(t *testing.T) {
	base := Errorf("storage.Get", Code_CODE_NOT_FOUND, "no user %q", "bob")
	wrapped := E("homeserver.Login", base)
	if KindOf(wrapped) != Code_CODE_NOT_FOUND {
		t.Fatalf("kind = %v", KindOf(wrapped))
	}
	if KindOf(errors.New("plain")) != Code_CODE_INTERNAL {
		t.Fatal("plain error should be internal")
	}
	pe := ToProto(E("op", errors.New("disk on fire")))
	if pe.Code != Code_CODE_INTERNAL || bytes.Contains([]byte(pe.Message), []byte("disk")) {
		t.Fatalf("internal detail leaked: %+v", pe)
	}
	if got := FromProto("client.Send", ToProto(wrapped)); KindOf(got) != Code_CODE_NOT_FOUND {
		t.Fatalf("round trip kind = %v", KindOf(got))
	}
}

func FuzzReadClientFrame(f *testing.F) {
	seed, _ := AppendFrame(nil, &ClientFrame{Id: 7, Body: &ClientFrame_Login{Login: &Login{User: "a", Password: "p"}}})
	f.Add(seed)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewFrameReader(bytes.NewReader(data), 4096)
		for i := 0; i < 64; i++ {
			var m ClientFrame
			if err := r.ReadMessage(&m); err != nil {
				return
			}
			// Anything decoded must re-encode.
			if _, err := AppendFrame(nil, &m); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

func BenchmarkFrameWriteRead(b *testing.B) {
	m := &ServerFrame{Body: &ServerFrame_Delivery{Delivery: &Delivery{Seq: 1, ConversationId: "abc@a.example", Sender: "alice@a.example/D1", MessageId: "m", Payload: make([]byte, 200)}}}
	var buf bytes.Buffer
	w := NewFrameWriter(&buf, 0)
	r := NewFrameReader(&buf, 0)
	var got ServerFrame
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteMessage(m); err != nil {
			b.Fatal(err)
		}
		if err := r.ReadMessage(&got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFrameReaderLyingLength: a length prefix announcing the largest frame
// followed by a few bytes makes the reader allocate one chunk, not the
// announced length.
func TestFrameReaderLyingLength(t *testing.T) {
	b := binary.AppendUvarint(nil, DefaultMaxFrame)
	b = append(b, "only a few bytes"...)
	r := NewFrameReader(bytes.NewReader(b), DefaultMaxFrame)
	if _, err := r.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if c := r.held(); c > max(frameChunk, keepBuf) { // a pooled buffer may be up to keepBuf
		t.Fatalf("reader holds %d bytes after 16 bytes of a frame announced as %d", c, DefaultMaxFrame)
	}
}

// TestFrameReaderLargeFrames: frames of several MB round-trip, and the
// reader and writer do not keep a large buffer after a large frame.
func TestFrameReaderLargeFrames(t *testing.T) {
	var buf bytes.Buffer
	w := NewFrameWriter(&buf, 0)
	sizes := []int{5 << 20, 10, 3<<20 + 7, 100}
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		if err := w.WriteMessage(&ClientFrame{Id: uint64(i + 1), Body: &ClientFrame_Send{Send: &Send{Payload: p}}}); err != nil {
			t.Fatal(err)
		}
		if p := getBuf(); cap(*p) > keepBuf { // same goroutine: the writer's buffer if it was pooled
			t.Fatalf("writer pooled %d bytes after a %d byte frame", cap(*p), n)
		}
	}
	r := NewFrameReader(&buf, 0)
	for i, n := range sizes {
		var m ClientFrame
		if err := r.ReadMessage(&m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		p := m.GetSend().GetPayload()
		if m.Id != uint64(i+1) || len(p) != n || p[0] != byte(i+1) || p[n-1] != byte(i+1) {
			t.Fatalf("frame %d: id %d, %d bytes", i, m.Id, len(p))
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v", err)
	}
	if c := r.held(); c != 0 {
		t.Fatalf("reader holds %d bytes at the end of the stream", c)
	}
}

// FuzzFrameReaderMemory: whatever the bytes (length prefixes that lie
// included), the reader never holds more than twice what it was sent
// plus one chunk (or a pooled buffer of at most keepBuf from an earlier
// frame), and what it returns has the declared length.
func FuzzFrameReaderMemory(f *testing.F) {
	f.Add(binary.AppendUvarint(nil, DefaultMaxFrame))
	f.Add(append(binary.AppendUvarint(nil, 70000), make([]byte, 70000)...))
	f.Add(append(binary.AppendUvarint(nil, 3), 1, 2, 3, 9))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewFrameReader(bytes.NewReader(data), DefaultMaxFrame)
		for {
			b, err := r.ReadFrame()
			// A buffer taken from the pool may be up to keepBuf from an earlier frame.
			if c := r.held(); c > 2*len(data)+frameChunk && c > keepBuf {
				t.Fatalf("reader holds %d bytes after reading %d", c, len(data))
			}
			if err != nil {
				return
			}
			if len(b) > len(data) {
				t.Fatalf("frame of %d bytes from %d bytes of input", len(b), len(data))
			}
		}
	})
}
