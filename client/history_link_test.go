package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"hearth/client/store"
)

// TestHistoryArchiveRoundTrip: the archive of a real store holds the
// messages since the cut-off, of every conversation, and reads back to
// the same messages; another user's, a cut or a padded archive is refused.
func TestHistoryArchiveRoundTrip(t *testing.T) {
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	msgs := []store.Message{
		{ID: "m1", Conversation: "c1@a.example", From: "bob@b.example", Text: "old", SentAt: now.Add(-40 * 24 * time.Hour), Seq: 1},
		{ID: "m2", Conversation: "c1@a.example", From: "alice@a.example", Text: "new\nline \u0000 \"quoted\"", SentAt: now.Add(-time.Hour), Seq: 2},
		{ID: "m3", Conversation: "c2@b.example", From: "carol@b.example", Text: strings.Repeat("x", 256<<10), SentAt: now, Seq: 7},
		{ID: "e1", Conversation: "c2@b.example", Event: "member_added", User: "dave@b.example", SentAt: now, Seq: 8},
	}
	if err := st.Update(func(tx *store.Tx) error {
		for _, m := range msgs {
			if _, err := tx.AddHistory(m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	h, err := writeHistoryArchive(st, "alice@a.example", now.Add(-30*24*time.Hour), &buf, nil)
	if err != nil || h.Messages != 3 || h.Conversations != 2 {
		t.Fatalf("header %+v, %v", h, err)
	}
	archive := buf.Bytes()
	var got []store.Message
	if _, err := readHistoryArchive(bytes.NewReader(archive), "alice@a.example", func(m store.Message) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d messages", len(got))
	}
	for i, m := range got {
		w := msgs[i+1]
		if m.ID != w.ID || m.Text != w.Text || m.Seq != w.Seq || m.Conversation != w.Conversation || m.Event != w.Event || !m.SentAt.Equal(w.SentAt) {
			t.Errorf("message %d = %+v, want %+v", i, m, w)
		}
	}
	all, _ := writeHistoryArchive(st, "alice@a.example", time.Time{}, &bytes.Buffer{}, nil)
	if all.Messages != 4 {
		t.Errorf("days 0 exported %d messages, want all 4", all.Messages)
	}

	nop := func(store.Message) error { return nil }
	lines := bytes.SplitAfter(archive, []byte("\n"))
	for name, tc := range map[string]struct {
		data []byte
		user string
		want string
	}{
		"other user":   {archive, "bob@b.example", "not of bob@b.example"},
		"cut":          {bytes.Join(lines[:3], nil), "alice@a.example", "holds 2 messages, its header counts 3"},
		"cut mid-line": {archive[:len(archive)-5], "alice@a.example", "unterminated"},
		"extra":        {append(append([]byte{}, archive...), lines[1]...), "alice@a.example", "more than the 3 messages"},
		"not archive":  {[]byte("{\"format\":\"x\"}\n"), "alice@a.example", "not a hearth-history-v1 archive"},
		"no seq":       {[]byte(`{"format":"hearth-history-v1","user":"alice@a.example","messages":1}` + "\n" + `{"id":"x","conversation":"c"}` + "\n"), "alice@a.example", "needs a conversation, seq and id"},
		"long line":    {append([]byte(`{"format":"hearth-history-v1","user":"alice@a.example","messages":1}`+"\n"), bytes.Repeat([]byte("a"), maxHistoryLine+10)...), "alice@a.example", "longer than"},
	} {
		if _, err := readHistoryArchive(bytes.NewReader(tc.data), tc.user, nop); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	stop := errors.New("stop")
	if _, err := readHistoryArchive(bytes.NewReader(archive), "alice@a.example", func(store.Message) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("an error of fn: %v", err)
	}
}

// FuzzReadHistoryArchive: downloaded archive bytes are read or refused
// without panic, and what reads has the count its header promised.
func FuzzReadHistoryArchive(f *testing.F) {
	f.Add([]byte(`{"format":"hearth-history-v1","user":"alice@a.example","messages":1,"conversations":1}` + "\n" +
		`{"id":"m1","conversation":"c@a.example","from":"bob@b.example","text":"hi","seq":1}` + "\n"))
	f.Add([]byte(`{"format":"hearth-history-v1","user":"alice@a.example","messages":0}` + "\n"))
	f.Add([]byte(`{"format":"hearth-history-v1","user":"alice@a.example","messages":1}` + "\n" +
		`{"id":"m1","conversation":"c","seq":1,"media":{"id":"bad"}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		h, err := readHistoryArchive(bytes.NewReader(data), "alice@a.example", func(m store.Message) error {
			if m.ID == "" || m.Seq == 0 || m.Conversation == "" {
				t.Fatalf("passed on %+v", m)
			}
			n++
			return nil
		})
		if err == nil && n != h.Messages {
			t.Fatalf("read %d messages, header says %d", n, h.Messages)
		}
	})
}

// TestPercent: one line per 10% step, none for nothing or a zero total.
func TestPercent(t *testing.T) {
	var lines []string
	p := percent(func(s string) { lines = append(lines, s) }, "up")
	for _, d := range []int64{0, 5, 9, 10, 55, 99, 100, 100} {
		p(d, 100)
	}
	p(1, 0)
	want := []string{"up 0% (0 of 100 bytes)", "up 10% (10 of 100 bytes)", "up 50% (55 of 100 bytes)", "up 90% (99 of 100 bytes)", "up 100% (100 of 100 bytes)"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", lines, want)
	}
	if percent(nil, "x") != nil {
		t.Error("percent(nil) is not nil")
	}
}
