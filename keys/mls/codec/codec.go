package codec

import (
	"errors"
	"fmt"
)

// MaxVectorLen is the largest vector length a varint header can carry (2^30-1).
const MaxVectorLen = 1<<30 - 1

var (
	// ErrShort means the input ended inside a value.
	ErrShort = errors.New("mls codec: input too short")
	// ErrVarint means a length header is not a valid minimal MLS varint.
	ErrVarint = errors.New("mls codec: invalid varint")
	// ErrTrailing means bytes remained after a complete value.
	ErrTrailing = errors.New("mls codec: trailing bytes")
	// ErrValue means a decoded value is out of its allowed range.
	ErrValue = errors.New("mls codec: invalid value")
)

// Writer appends encoded values to a buffer.
type Writer struct {
	b []byte
}

// NewWriter returns a Writer appending to buf (which may be nil).
func NewWriter(buf []byte) *Writer { return &Writer{b: buf} }

// Bytes returns the encoded bytes.
func (w *Writer) Bytes() []byte { return w.b }

// Uint8 appends v.
func (w *Writer) Uint8(v uint8) { w.b = append(w.b, v) }

// Uint16 appends v big-endian.
func (w *Writer) Uint16(v uint16) { w.b = append(w.b, byte(v>>8), byte(v)) }

// Uint32 appends v big-endian.
func (w *Writer) Uint32(v uint32) {
	w.b = append(w.b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// Uint64 appends v big-endian.
func (w *Writer) Uint64(v uint64) {
	w.b = append(w.b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// Bool appends v as one byte.
func (w *Writer) Bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// Raw appends b with no length prefix (fixed-size opaque or pre-encoded value).
func (w *Writer) Raw(b []byte) { w.b = append(w.b, b...) }

// Varint appends n in the shortest MLS varint form. It panics if n > MaxVectorLen,
// which only a programming error can cause (no vector in memory is that long).
func (w *Writer) Varint(n int) {
	var hdr [4]byte
	w.b = append(w.b, hdr[:putVarint(&hdr, n)]...)
}

// putVarint writes n's varint form at the start of hdr and returns its
// length (Varint's panic included).
func putVarint(hdr *[4]byte, n int) int {
	switch {
	case n < 0 || n > MaxVectorLen:
		panic(fmt.Sprintf("mls codec: vector length %d out of range", n))
	case n < 1<<6:
		hdr[0] = byte(n)
		return 1
	case n < 1<<14:
		hdr[0], hdr[1] = 0x40|byte(n>>8), byte(n)
		return 2
	default:
		hdr[0], hdr[1], hdr[2], hdr[3] = 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return 4
	}
}

// Opaque appends a variable-size opaque vector: varint length, then b.
func (w *Writer) Opaque(b []byte) {
	w.Varint(len(b))
	w.b = append(w.b, b...)
}

// Vector appends a variable-size vector whose body is written by body.
// The length prefix is computed after the body is written.
func (w *Writer) Vector(body func(w *Writer)) {
	start := len(w.b)
	body(w)
	n := len(w.b) - start
	var hdr [4]byte // (no Writer for it: that would put it on the heap)
	hl := putVarint(&hdr, n)
	w.b = append(w.b, hdr[:hl]...)
	copy(w.b[start+hl:], w.b[start:start+n])
	copy(w.b[start:], hdr[:hl])
}

// Optional appends the presence byte of an optional<T> and, if present, the value.
func (w *Writer) Optional(present bool, value func(w *Writer)) {
	w.Bool(present)
	if present {
		value(w)
	}
}

// Reader decodes values from a byte slice. The first error sticks: later
// reads return zero values, and Err reports it.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b. Slices returned by the Reader alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Fail records err (if no error is recorded yet) so decoders can report
// semantic problems through the same path.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Empty reports whether all input was consumed without error.
func (r *Reader) Empty() bool { return r.err == nil && len(r.b) == 0 }

// Done returns Err, or ErrTrailing if unread bytes remain.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, len(r.b))
	}
	return nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = ErrShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Uint8 reads one byte.
func (r *Reader) Uint8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Uint16 reads a big-endian uint16.
func (r *Reader) Uint16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

// Uint32 reads a big-endian uint32.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Uint64 reads a big-endian uint64.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return uint64(r.u32(b[:4]))<<32 | uint64(r.u32(b[4:]))
}

func (r *Reader) u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Bool reads one byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.Uint8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.Fail(fmt.Errorf("%w: boolean not 0 or 1", ErrValue))
		return false
	}
}

// Raw reads n bytes with no length prefix.
func (r *Reader) Raw(n int) []byte { return r.take(n) }

// Varint reads an MLS varint length. Non-minimal encodings and the reserved
// 8-byte form (prefix 0b11) are errors, as RFC 9420 §2.1.2 requires.
func (r *Reader) Varint() int {
	first := r.take(1)
	if first == nil {
		return 0
	}
	switch first[0] >> 6 {
	case 0:
		return int(first[0])
	case 1:
		rest := r.take(1)
		if rest == nil {
			return 0
		}
		n := int(first[0]&0x3f)<<8 | int(rest[0])
		if n < 1<<6 {
			r.Fail(fmt.Errorf("%w: non-minimal 2-byte length %d", ErrVarint, n))
			return 0
		}
		return n
	case 2:
		rest := r.take(3)
		if rest == nil {
			return 0
		}
		n := int(first[0]&0x3f)<<24 | int(rest[0])<<16 | int(rest[1])<<8 | int(rest[2])
		if n < 1<<14 {
			r.Fail(fmt.Errorf("%w: non-minimal 4-byte length %d", ErrVarint, n))
			return 0
		}
		return n
	default:
		r.Fail(fmt.Errorf("%w: reserved 8-byte form", ErrVarint))
		return 0
	}
}

// Opaque reads a variable-size opaque vector.
func (r *Reader) Opaque() []byte {
	n := r.Varint()
	if r.err != nil {
		return nil
	}
	return r.take(n)
}

// Vector reads a variable-size vector and calls item repeatedly on a Reader
// restricted to the vector's body until that body is consumed. An error
// inside the body becomes r's error.
func (r *Reader) Vector(item func(r *Reader)) {
	body := r.Opaque()
	if r.err != nil {
		return
	}
	sub := NewReader(body)
	for sub.err == nil && len(sub.b) > 0 {
		item(sub)
	}
	r.Fail(sub.err)
}

// Optional reads the presence byte of an optional<T>; if present, value decodes it.
func (r *Reader) Optional(value func(r *Reader)) bool {
	if !r.Bool() {
		return false
	}
	value(r)
	return r.err == nil
}

// WriteList writes a variable-size vector of items.
func WriteList[T any](w *Writer, items []T, item func(w *Writer, v T)) {
	w.Vector(func(w *Writer) {
		for _, v := range items {
			item(w, v)
		}
	})
}

// ReadList reads a variable-size vector of items.
func ReadList[T any](r *Reader, item func(r *Reader) T) []T {
	var out []T
	r.Vector(func(r *Reader) {
		v := item(r)
		if r.Err() == nil {
			out = append(out, v)
		}
	})
	return out
}
