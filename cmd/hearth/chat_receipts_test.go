package main

import (
	"encoding/json"
	"strings"
	"testing"

	"hearth/client/store"
)

func TestUTF8Output(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		utf8 bool
	}{
		{map[string]string{}, false},
		{map[string]string{"LANG": "en_US.UTF-8"}, true},
		{map[string]string{"LANG": "de_DE.utf8"}, true},
		{map[string]string{"LANG": "C"}, false},
		{map[string]string{"LC_ALL": "C", "LANG": "en_US.UTF-8"}, false},
		{map[string]string{"LC_CTYPE": "C.UTF-8", "LANG": "C"}, true},
		{map[string]string{"LC_ALL": "POSIX", "LC_CTYPE": "C.UTF-8"}, false},
	} {
		if got := utf8Output(func(k string) string { return c.env[k] }); got != c.utf8 {
			t.Errorf("utf8Output(%v) = %v, want %v", c.env, got, c.utf8)
		}
	}
}

func TestStatusMark(t *testing.T) {
	two := []string{"b@x", "c@x"}
	for _, c := range []struct {
		m           store.Message
		utf8, ascii string
	}{
		{store.Message{}, "", ""},
		{store.Message{Status: "sent", Recipients: []string{"b@x"}}, " ✓", " (sent)"},
		{store.Message{Status: "delivered", Recipients: []string{"b@x"}, DeliveredTo: []string{"b@x"}}, " ✓✓", " (delivered)"},
		{store.Message{Status: "read", Recipients: []string{"b@x"}, DeliveredTo: []string{"b@x"}, ReadBy: []string{"b@x"}}, " ✓✓ read", " (read)"},
		{store.Message{Status: "delivered", Recipients: two, DeliveredTo: two, ReadBy: two[:1]}, " ✓✓ delivered 2/2, read 1/2", " (delivered) delivered 2/2, read 1/2"},
	} {
		if got := statusMark(c.m, true); got != c.utf8 {
			t.Errorf("statusMark(%+v, utf8) = %q, want %q", c.m, got, c.utf8)
		}
		if got := statusMark(c.m, false); got != c.ascii {
			t.Errorf("statusMark(%+v, ascii) = %q, want %q", c.m, got, c.ascii)
		}
	}
}

// TestShownStatusFields: history --json prints "status" with
// "delivered_to" and "read_by" on this user's own messages, as lists even
// when empty, and none of them on others' messages.
func TestShownStatusFields(t *testing.T) {
	for _, c := range []struct {
		m    store.Message
		want []string // substrings of the JSON
		not  []string
	}{
		{store.Message{ID: "1", Status: "sent", Recipients: []string{"b@x"}},
			[]string{`"status":"sent"`, `"delivered_to":[]`, `"read_by":[]`}, nil},
		{store.Message{ID: "2", Status: "delivered", DeliveredTo: []string{"b@x"}},
			[]string{`"status":"delivered"`, `"delivered_to":["b@x"]`, `"read_by":[]`}, nil},
		{store.Message{ID: "3", Status: "read", DeliveredTo: []string{"b@x"}, ReadBy: []string{"b@x"}},
			[]string{`"status":"read"`, `"delivered_to":["b@x"]`, `"read_by":["b@x"]`}, nil},
		{store.Message{ID: "4", From: "b@x", Text: "hi"}, nil, []string{`"status"`, `"delivered_to"`, `"read_by"`}},
	} {
		b, err := json.Marshal(shownMessage(c.m))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: no %s", b, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(string(b), n) {
				t.Errorf("%s: has %s", b, n)
			}
		}
		if strings.Count(string(b), `"delivered_to"`) > 1 || strings.Count(string(b), `"read_by"`) > 1 {
			t.Errorf("%s: a field twice", b)
		}
	}
}
