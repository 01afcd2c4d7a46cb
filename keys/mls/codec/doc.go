// Package codec encodes and decodes the TLS presentation language as MLS
// uses it (RFC 9420 §2.1): big-endian integers, fixed-size opaque values,
// and variable-size vectors whose length prefix is the QUIC-style varint of
// RFC 9000 §16 limited to 30 bits, in its shortest form.
//
// A Writer appends to a byte slice; a Reader consumes one and remembers the
// first error, so a decoder reads every field and checks Err once.
// WriteList and ReadList write and read a vector of items.
package codec
