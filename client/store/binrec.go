package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Records written on every message (outbox items, history and inbox
// messages) are stored in a compact binary form instead of JSON: decoding
// JSON (a base64 payload included) was the largest part of the store's
// CPU per message after bbolt itself.
//
// A binary record starts with recBinary, a byte no JSON text starts with,
// so a record is read in whichever form it was written: records of older
// versions stay JSON until they are written again. After the marker the
// fields follow in a fixed order, each as an unsigned varint (numbers,
// lengths) followed by its bytes; times as their MarshalBinary form with
// its length (0 for the zero time). A decoder reads the fields it knows
// and ignores any after them, so fields added at the end later are
// skipped by this version.
const recBinary = 0x01

// recordEncoder and recordDecoder are the record types with a binary form.
type (
	recordEncoder interface {
		appendBinary(b []byte) ([]byte, error)
	}
	recordDecoder interface {
		readBinary(r *recReader) error
	}
)

var (
	_ recordEncoder = OutboxItem{}
	_ recordDecoder = (*OutboxItem)(nil)
	_ recordEncoder = Message{}
	_ recordDecoder = (*Message)(nil)
)

// encodeRecord is v's stored form: binary if v has one, else JSON.
func encodeRecord(v any) ([]byte, error) {
	if e, ok := v.(recordEncoder); ok {
		return e.appendBinary(append(make([]byte, 0, 256), recBinary))
	}
	return json.Marshal(v)
}

// decodeRecord reads raw, in either form, into v.
func decodeRecord(raw []byte, v any) error {
	if len(raw) > 0 && raw[0] == recBinary {
		d, ok := v.(recordDecoder)
		if !ok {
			return fmt.Errorf("binary record for %T", v)
		}
		return d.readBinary(&recReader{b: raw[1:]})
	}
	return json.Unmarshal(raw, v)
}

var errShortRecord = errors.New("binary record cut short")

// recReader reads the fields of a binary record; the first error sticks
// and every later read returns a zero value.
type recReader struct {
	b   []byte
	err error
}

func (r *recReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) int() int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
		r.err = errShortRecord
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// bytes returns the next field's bytes (nil if empty), copied.
func (r *recReader) bytes() []byte {
	n := r.uint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortRecord
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *recReader) string() string {
	n := r.uint()
	if r.err != nil || n == 0 {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errShortRecord
		return ""
	}
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *recReader) strings() []string {
	n := r.uint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)) { // every string takes at least a byte
		r.err = errShortRecord
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.string()
	}
	return v
}

func (r *recReader) time() time.Time {
	b := r.bytes()
	var t time.Time
	if b == nil || r.err != nil {
		return t
	}
	if err := t.UnmarshalBinary(b); err != nil {
		r.err = fmt.Errorf("binary record: time: %w", err)
	}
	return t
}

// optTime reads a time that may be absent (an empty field).
func (r *recReader) optTime() *time.Time {
	b := r.bytes()
	if b == nil || r.err != nil {
		return nil
	}
	t := new(time.Time)
	if b[0] != 1 {
		r.err = fmt.Errorf("binary record: optional time marked %d", b[0])
		return nil
	}
	if err := t.UnmarshalBinary(b[1:]); err != nil {
		r.err = fmt.Errorf("binary record: time: %w", err)
		return nil
	}
	return t
}

// media reads a MediaRef stored as JSON (rare: media messages only).
func (r *recReader) media() *MediaRef {
	b := r.bytes()
	if b == nil || r.err != nil {
		return nil
	}
	m := new(MediaRef)
	if err := json.Unmarshal(b, m); err != nil {
		r.err = fmt.Errorf("binary record: media: %w", err)
	}
	return m
}

func appendUint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendInt(b []byte, v int) []byte { return binary.AppendVarint(b, int64(v)) }

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendString(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendStrings(b []byte, v []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, s := range v {
		b = appendString(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return binary.AppendUvarint(b, 0), nil
	}
	v, err := t.MarshalBinary()
	if err != nil {
		return b, fmt.Errorf("binary record: time: %w", err)
	}
	return appendBytes(b, v), nil
}

// appendOptTime stores nil as an empty field and a time as 1 and its
// MarshalBinary form (a zero time too, so that it reads back as not nil).
func appendOptTime(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return binary.AppendUvarint(b, 0), nil
	}
	v, err := t.MarshalBinary()
	if err != nil {
		return b, fmt.Errorf("binary record: time: %w", err)
	}
	return appendBytes(b, append([]byte{1}, v...)), nil
}

func appendMedia(b []byte, m *MediaRef) ([]byte, error) {
	if m == nil {
		return binary.AppendUvarint(b, 0), nil
	}
	v, err := json.Marshal(m)
	if err != nil {
		return b, fmt.Errorf("binary record: media: %w", err)
	}
	return appendBytes(b, v), nil
}

// appendBinary appends the item's fields after the marker.
func (it OutboxItem) appendBinary(b []byte) ([]byte, error) {
	var err error
	b = appendUint(b, it.Seq)
	b = appendString(b, it.ID)
	b = appendString(b, it.Conversation)
	b = appendString(b, it.To)
	b = appendString(b, it.Text)
	b = appendBytes(b, it.Control)
	if b, err = appendMedia(b, it.Media); err != nil {
		return b, err
	}
	b = appendBytes(b, it.Payload)
	b = appendUint(b, it.Epoch)
	if b, err = appendTime(b, it.Created); err != nil {
		return b, err
	}
	b = appendBytes(b, it.Body)
	b = appendStrings(b, it.Recipients)
	b = appendInt(b, it.Attempts)
	b = appendString(b, it.LastError)
	b = appendString(b, it.Failed)
	return appendString(b, it.Queue), nil
}

func (it *OutboxItem) readBinary(r *recReader) error {
	*it = OutboxItem{
		Seq:          r.uint(),
		ID:           r.string(),
		Conversation: r.string(),
		To:           r.string(),
		Text:         r.string(),
		Control:      r.bytes(),
		Media:        r.media(),
		Payload:      r.bytes(),
		Epoch:        r.uint(),
		Created:      r.time(),
		Body:         r.bytes(),
		Recipients:   r.strings(),
		Attempts:     r.int(),
		LastError:    r.string(),
		Failed:       r.string(),
		Queue:        r.string(),
	}
	return r.err
}

// appendBinary appends the message's fields after the marker, all of
// them as JSON stored them (Status, DeliveredTo and ReadBy included).
func (m Message) appendBinary(b []byte) ([]byte, error) {
	var err error
	b = appendString(b, m.ID)
	b = appendString(b, m.Conversation)
	b = appendString(b, m.From)
	b = appendString(b, m.Text)
	if b, err = appendTime(b, m.SentAt); err != nil {
		return b, err
	}
	b = appendUint(b, m.Seq)
	b = appendString(b, m.Event)
	b = appendString(b, m.User)
	b = appendInt(b, m.Count)
	b = appendString(b, m.Reason)
	if b, err = appendMedia(b, m.Media); err != nil {
		return b, err
	}
	if b, err = appendOptTime(b, m.ServerTime); err != nil {
		return b, err
	}
	b = appendStrings(b, m.Recipients)
	b = appendString(b, m.Status)
	b = appendStrings(b, m.DeliveredTo)
	b = appendStrings(b, m.ReadBy)
	b = appendStrings(b, m.MessageIDs)
	return appendString(b, m.Kind), nil
}

func (m *Message) readBinary(r *recReader) error {
	*m = Message{
		ID:           r.string(),
		Conversation: r.string(),
		From:         r.string(),
		Text:         r.string(),
		SentAt:       r.time(),
		Seq:          r.uint(),
		Event:        r.string(),
		User:         r.string(),
		Count:        r.int(),
		Reason:       r.string(),
		Media:        r.media(),
		ServerTime:   r.optTime(),
		Recipients:   r.strings(),
		Status:       r.string(),
		DeliveredTo:  r.strings(),
		ReadBy:       r.strings(),
		MessageIDs:   r.strings(),
		Kind:         r.string(),
	}
	return r.err
}
