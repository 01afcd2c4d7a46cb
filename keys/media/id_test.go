package media

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"AAAAAAAAAAAAAAAAAAAAAA":  true,
		"abc-_0123456789xyzXYZ":   true,
		strings.Repeat("a", 64):   true,
		strings.Repeat("a", 15):   false,
		strings.Repeat("a", 65):   false,
		"../../hearth.db/xxxxxxx": false,
		"AAAAAAAAAAAAAAAAAAAAA=":  false,
		"AAAAAAAAAAAAAAAAAAAA A":  false,
		"":                        false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
