package client

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"hearth/client/store"
)

// cutReader returns the first n bytes of r's data, then err.
type cutReader struct {
	data []byte
	err  error
}

func (c *cutReader) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(b, c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestImportArchiveCutThenRetried: an import cut off after 700 of 1,200
// messages keeps the batches it stored (500) and the pending record; the
// retry adds only the rest, ends the record, and a message at a seq this
// device holds another message at is skipped, not an error.
func TestImportArchiveCutThenRetried(t *testing.T) {
	open := func() *store.Store {
		st, err := store.Open(t.TempDir(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	src, dst := open(), open()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := src.Update(func(tx *store.Tx) error {
		for i := range 1200 {
			conv := "big@a.example"
			if i >= 1000 {
				conv = "small@a.example"
			}
			m := store.Message{ID: fmt.Sprintf("m%d", i), Conversation: conv, From: "bob@a.example", Text: fmt.Sprint("text ", i),
				SentAt: now, Seq: uint64(i%1000 + 1)}
			if _, err := tx.AddHistory(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := writeHistoryArchive(src, "alice@a.example", time.Time{}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	c := &Client{cfg: Config{Now: func() time.Time { return now }}, st: dst, log: slog.New(slog.DiscardHandler)}
	if err := dst.Update(func(tx *store.Tx) error {
		if err := (historyImporter{c}).Keep(tx, []byte(`{"id":"x"}`)); err != nil {
			return err
		}
		// Another message at seq 5 of the small conversation.
		_, err := tx.AddHistory(store.Message{ID: "other", Conversation: "small@a.example", Seq: 5, Text: "live"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cut := 0
	for i, line := 0, 0; line <= 700; i++ { // the header and 700 messages
		if archive[i] == '\n' {
			line++
			cut = i + 1
		}
	}
	lost := errors.New("connection lost")
	nop := func() {}
	if _, _, _, err := c.importArchive(&cutReader{data: archive[:cut], err: lost}, "alice@a.example", nop); !errors.Is(err, lost) {
		t.Fatalf("cut import: %v", err)
	}
	count := func() (n int) {
		dst.View(func(tx *store.Tx) error {
			for _, conv := range tx.HistoryConversations() {
				tx.EachHistory(conv, func(store.Message) error { n++; return nil })
			}
			return nil
		})
		return n
	}
	if n := count(); n != 501 {
		t.Fatalf("after the cut import the store holds %d messages, want 500 and the other one", n)
	}
	if _, ok := c.PendingHistory(); !ok {
		t.Fatal("the cut import ended the pending record")
	}
	h, added, skipped, err := c.importArchive(bytes.NewReader(archive), "alice@a.example", nop)
	if err != nil || h.Messages != 1200 || added != 699 || skipped != 1 {
		t.Fatalf("retry: header %d messages, added %d, skipped %d, %v; want 1200, 699, 1", h.Messages, added, skipped, err)
	}
	if n := count(); n != 1200 {
		t.Fatalf("after the retry the store holds %d messages, want 1200", n)
	}
	if _, ok := c.PendingHistory(); ok {
		t.Fatal("the pending record survived the import")
	}
}

// TestPendingHistoryExpires: an archive not imported within historyKeep
// of the approval is given up (ErrHistoryExpired) and its record ends;
// the backoff doubles from 5 s to at most 30 minutes.
func TestPendingHistoryExpires(t *testing.T) {
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := &Client{cfg: Config{Now: func() time.Time { return now }}, st: st, log: slog.New(slog.DiscardHandler)}
	if err := st.Update(func(tx *store.Tx) error { return (historyImporter{c}).Keep(tx, []byte(`{"id":"x"}`)) }); err != nil {
		t.Fatal(err)
	}
	if p, ok := c.PendingHistory(); !ok || !p.NextAt.IsZero() || !p.Expires.Equal(now.Add(historyKeep)) {
		t.Fatalf("kept: %+v %v", p, ok)
	}
	now = now.Add(historyKeep + time.Minute)
	if tried, err := c.ResumeHistory(t.Context()); !tried || !errors.Is(err, ErrHistoryExpired) {
		t.Fatalf("ResumeHistory of an expired archive: tried %v, %v", tried, err)
	}
	if _, ok := c.PendingHistory(); ok {
		t.Fatal("the expired record was kept")
	}
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 4: 40 * time.Second, 9: 1280 * time.Second, 10: 30 * time.Minute, 60: 30 * time.Minute} {
		if got := historyBackoff(n); got != want {
			t.Errorf("historyBackoff(%d) = %v, want %v", n, got, want)
		}
	}
}
