package message

import (
	"bytes"
	"errors"
	"fmt"

	"hearth/keys/mls/codec"
)

// ErrMalformed wraps every decoding failure of this package (together with
// the codec error that caused it, if any).
var ErrMalformed = errors.New("mls: malformed message")

// encoder is implemented by every struct of this package.
type encoder interface{ Encode(w *codec.Writer) }

// decoder is implemented by pointers to every struct of this package.
type decoder interface{ Decode(r *codec.Reader) }

// encode returns the TLS presentation encoding of v.
func encode(v encoder) []byte {
	var buf []byte
	if s, ok := v.(sizer); ok {
		buf = make([]byte, 0, s.sizeHint())
	}
	w := codec.NewWriter(buf)
	v.Encode(w)
	return w.Bytes()
}

// sizer is implemented by the structs whose encoding size is easily
// estimated (encode allocates it at once instead of growing).
type sizer interface{ sizeHint() int }

// decode fills v from exactly b (a private copy, so v never aliases the
// caller's buffer). what names the struct in errors.
func decode(v decoder, b []byte, what string) error {
	r := codec.NewReader(bytes.Clone(b))
	v.Decode(r)
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	return nil
}

// badValue records an out-of-range enum or semantic error on r.
func badValue(r *codec.Reader, format string, args ...any) {
	r.Fail(fmt.Errorf("%w: %s", codec.ErrValue, fmt.Sprintf(format, args...)))
}

func writeU16s[T ~uint16](w *codec.Writer, v []T) {
	codec.WriteList(w, v, func(w *codec.Writer, x T) { w.Uint16(uint16(x)) })
}

func readU16s[T ~uint16](r *codec.Reader) []T {
	return codec.ReadList(r, func(r *codec.Reader) T { return T(r.Uint16()) })
}
