package convstate

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestConversationRecord(t *testing.T) {
	for _, cv := range []Conversation{
		{ID: "c1@a.example", Peers: []string{"bob@a.example"}},
		{ID: "g@a.example", Peers: []string{"bob@a.example", "carol@b.example"}, Creator: "alice@a.example", Group: true},
		{ID: "lonely@a.example"},
	} {
		raw := encodeConversation(cv)
		if raw[0] != convBinary {
			t.Fatalf("%v stored as %q, not in binary", cv, raw)
		}
		got, err := decodeConversation(raw)
		if err != nil || !reflect.DeepEqual(got, cv) {
			t.Errorf("binary: %+v %v, want %+v", got, err, cv)
		}
		old, err := json.Marshal(cv) // as earlier versions stored it
		if err != nil {
			t.Fatal(err)
		}
		got, err = decodeConversation(old)
		if err != nil || got.ID != cv.ID || got.Creator != cv.Creator || got.Group != cv.Group || len(got.Peers) != len(cv.Peers) {
			t.Errorf("JSON: %+v %v, want %+v", got, err, cv)
		}
		for n := 1; n < len(raw); n++ {
			if _, err := decodeConversation(raw[:n]); err == nil {
				t.Fatalf("%v cut to %d of %d bytes read without error", cv, n, len(raw))
			}
		}
	}
	if _, err := decodeConversation([]byte{convBinary, 1, 'x', 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("a huge peer count read without error")
	}
}

func FuzzConversationRecord(f *testing.F) {
	f.Add(encodeConversation(Conversation{ID: "g", Peers: []string{"a", "b"}, Creator: "c", Group: true}))
	f.Add([]byte(`{"id":"c","peers":["p"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cv, err := decodeConversation(raw)
		if err != nil || len(raw) == 0 || raw[0] != convBinary {
			return
		}
		again, err := decodeConversation(encodeConversation(cv))
		if err != nil || !reflect.DeepEqual(again, cv) {
			t.Fatalf("re-encoded %+v read back as %+v, %v", cv, again, err)
		}
	})
}
