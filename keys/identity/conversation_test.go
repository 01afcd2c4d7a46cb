package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConversation(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		local    string
		hub      string
		describe string
	}{
		{"g1@a.example", true, "g1", "a.example", "plain"},
		{"Ab.c_D-9@x", true, "Ab.c_D-9", "x", "every allowed LOCAL character"},
		{strings.Repeat("a", 128) + "@x", true, strings.Repeat("a", 128), "x", "longest LOCAL"},
		{strings.Repeat("a", 129) + "@x", false, "", "", "LOCAL too long"},
		{"@x", false, "", "", "empty LOCAL"},
		{"g1", false, "", "", "no @"},
		{"g1@", false, "", "", "empty domain"},
		{"g 1@x", false, "", "", "space in LOCAL"},
		{"g1@a@x", false, "", "", "second @"},
		{"g1@X.example", false, "", "", "uppercase domain"},
		{"g1@-a.example", false, "", "", "label starts with -"},
		{"g1@a.example/d", false, "", "", "device suffix"},
	} {
		c, err := ParseConversation(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: ParseConversation(%q) = %v, want ok=%v", tc.describe, tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrAddress) {
				t.Errorf("%s: error %v does not wrap ErrAddress", tc.describe, err)
			}
			if !c.IsZero() {
				t.Errorf("%s: non-zero id %v with an error", tc.describe, c)
			}
			continue
		}
		if c.Local() != tc.local || c.Hub() != tc.hub || c.String() != tc.in {
			t.Errorf("%s: got local %q hub %q string %q", tc.describe, c.Local(), c.Hub(), c.String())
		}
	}
	if s := (ConversationID{}).String(); s != "" {
		t.Errorf("zero ConversationID prints %q", s)
	}
}

func TestNormalizeUserIn(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice@home.example"},
		{"Alice", "alice@home.example"},
		{"bob@other.example", "bob@other.example"},
		{"BOB@Other.Example", "bob@other.example"},
		{"", ""},
		{"a b", ""},
	} {
		u, err := NormalizeUserIn(tc.in, "home.example")
		if got := u.String(); (err != nil) != (tc.want == "") || (err == nil && got != tc.want) {
			t.Errorf("NormalizeUserIn(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
