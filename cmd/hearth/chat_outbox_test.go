package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"hearth/client/store"
)

// TestPrintOutbox: `outbox list` prints a header and one row per item, and
// with --json one object per item with the contract's fields ("file" for
// media, the last error as reason while queued).
func TestPrintOutbox(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	items := []store.OutboxItem{
		{ID: "m1", To: "bob@nowhere.invalid", Text: "typo", Failed: "no such domain", Created: at},
		{ID: "m2", Conversation: "g@localhost", To: "g@localhost", Text: "hi", Attempts: 3, LastError: "unavailable", Created: at},
		{ID: "m3", Conversation: "c@localhost", To: "bob@localhost", Media: &store.MediaRef{Name: "cat.png"}, Payload: []byte{1}, Created: at},
	}
	var plain bytes.Buffer
	if err := printOutbox(&plain, items, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "failed") ||
		!strings.Contains(lines[2], "queued") || !strings.Contains(lines[3], "sending") || !strings.Contains(lines[3], "cat.png") {
		t.Fatalf("plain list:\n%s", plain.String())
	}
	var js bytes.Buffer
	if err := printOutbox(&js, items, true); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"id": "m1", "to": "bob@nowhere.invalid", "conversation": "", "text": "typo", "state": "failed", "reason": "no such domain", "attempts": 0.0, "created": "2026-12-06T20:00:00Z"},
		{"id": "m2", "to": "g@localhost", "conversation": "g@localhost", "text": "hi", "state": "queued", "reason": "unavailable", "attempts": 3.0, "created": "2026-12-06T20:00:00Z"},
		{"id": "m3", "to": "bob@localhost", "conversation": "c@localhost", "file": "cat.png", "state": "sending", "reason": "", "attempts": 0.0, "created": "2026-12-06T20:00:00Z"},
	}
	for i, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want[i]); g != w {
			t.Errorf("line %d = %s, want %s", i, g, w)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
