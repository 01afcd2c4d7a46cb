package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func fullOutboxItem() OutboxItem {
	return OutboxItem{
		Seq: 7, ID: "m-1", Conversation: "c1@a.example", To: "bob@a.example", Text: "héllo",
		Control: []byte{0, 1, 2}, Payload: []byte("sealed request bytes"), Epoch: 3,
		Media:   &MediaRef{ID: "med", Key: "k", SHA256: "ab", Size: 12, Type: "image/png", Name: "p.png"},
		Created: time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC),
		Body:    []byte("body"), Recipients: []string{"bob@a.example", "carol@b.example"},
		Attempts: 2, LastError: "timeout", Failed: "refused", Queue: "c1@a.example",
	}
}

func fullMessage() Message {
	st := time.Date(2026, 12, 7, 8, 0, 1, 5, time.UTC)
	return Message{
		ID: "m-1", Conversation: "c1@a.example", From: "alice@a.example", Text: "hi",
		SentAt: time.Date(2026, 12, 7, 8, 0, 0, 1, time.FixedZone("x", 3600)), Seq: 42,
		Event: "member_added", User: "bob@a.example", Count: 3, Reason: "why",
		Media:      &MediaRef{ID: "med", Size: 1},
		ServerTime: &st, Recipients: []string{"bob@a.example"}, Status: "read",
		DeliveredTo: []string{"bob@a.example"}, ReadBy: []string{"bob@a.example"},
		MessageIDs: []string{"x", "y"}, Kind: "read",
	}
}

// viaJSON is what a record reads back as from its JSON form (the form
// records had before the binary one): the reference for the binary form.
func viaJSON[T any](t *testing.T, v T) T {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := decodeRecord(raw, &out); err != nil {
		t.Fatalf("JSON record does not read: %v", err)
	}
	return out
}

func viaBinary[T any](t *testing.T, v T) T {
	t.Helper()
	raw, err := encodeRecord(v)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != recBinary {
		t.Fatalf("%T stored as %q, not in binary", v, raw)
	}
	var out T
	if err := decodeRecord(raw, &out); err != nil {
		t.Fatalf("binary record does not read: %v", err)
	}
	return out
}

// sameRecord compares records by their JSON text: the times of the two
// forms may differ in their location pointer, not in what they print.
func sameRecord(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestBinaryRecordsReadAsJSONDid(t *testing.T) {
	for _, it := range []OutboxItem{{}, {ID: "m", To: "bob@a.example", Text: "x"}, fullOutboxItem()} {
		sameRecord(t, "outbox item", viaBinary(t, it), viaJSON(t, it))
	}
	st := time.Time{}
	for _, m := range []Message{{}, {ID: "m", Seq: 1}, fullMessage(), {ID: "z", ServerTime: &st}} {
		got, want := viaBinary(t, m), viaJSON(t, m)
		sameRecord(t, "message", got, want)
		if (got.ServerTime == nil) != (m.ServerTime == nil) {
			t.Errorf("ServerTime nil %v, want %v", got.ServerTime == nil, m.ServerTime == nil)
		}
	}
	it := fullOutboxItem()
	if got := viaBinary(t, it); !reflect.DeepEqual(got.Payload, it.Payload) || !got.Created.Equal(it.Created) {
		t.Errorf("payload or time changed: %+v", got)
	}
}

// TestOldJSONRecordsStillRead: records written as JSON (every profile
// before the binary form) read back, and are rewritten in binary.
func TestOldJSONRecordsStillRead(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	it := fullOutboxItem()
	it.Failed = ""
	m := fullMessage()
	err := s.Update(func(tx *Tx) error {
		raw, err := json.Marshal(it)
		if err != nil {
			return err
		}
		if err := tx.put(tx.tx.Bucket(bOutbox), u64key(it.Seq), raw); err != nil {
			return err
		}
		if err := tx.tx.Bucket(bOutIDs).Put([]byte(it.ID), u64key(it.Seq)); err != nil {
			return err
		}
		raw, err = json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.put(tx.tx.Bucket(bConvs), historyKey(m.Conversation, m.Seq), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		got, err := tx.OutboxItem(it.ID)
		if err != nil {
			return err
		}
		sameRecord(t, "old outbox item", got, viaJSON(t, it))
		hist, err := tx.History(m.Conversation, 0)
		if err != nil {
			return err
		}
		if len(hist) != 1 {
			t.Fatalf("history holds %d messages, want 1", len(hist))
		}
		sameRecord(t, "old message", hist[0], viaJSON(t, m))
		got.Attempts++
		return tx.UpdateOutbox(got)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		raw, err := tx.get(tx.tx.Bucket(bOutbox), u64key(it.Seq))
		if err != nil || len(raw) == 0 || raw[0] != recBinary {
			t.Errorf("rewritten item is not binary: %q %v", raw, err)
		}
		return nil
	})
}

// TestBinaryRecordDamage: a cut or garbled binary record is an error,
// never a panic or a half-read record taken for whole.
func TestBinaryRecordDamage(t *testing.T) {
	raw, err := encodeRecord(fullOutboxItem())
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(raw); n++ {
		var it OutboxItem
		if decodeRecord(raw[:n], &it) == nil {
			t.Fatalf("record cut to %d of %d bytes read without error", n, len(raw))
		}
	}
	var m Message
	if err := decodeRecord(raw, &m); err == nil {
		t.Log("an outbox record read as a message without error (fields line up by chance)")
	}
	if err := decodeRecord([]byte{recBinary, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, &m); err == nil {
		t.Error("an overlong varint read without error")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, v := range []any{fullOutboxItem(), fullMessage(), Message{}} {
		raw, err := encodeRecord(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var it OutboxItem
		if decodeRecord(raw, &it) == nil && len(raw) > 0 && raw[0] == recBinary {
			again, err := encodeRecord(it)
			if err != nil {
				t.Fatal(err)
			}
			var back OutboxItem
			if err := decodeRecord(again, &back); err != nil {
				t.Fatalf("re-encoded record does not read: %v", err)
			}
		}
		var m Message
		decodeRecord(raw, &m)
	})
}
