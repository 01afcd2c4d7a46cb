package treemath

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// loadVectors reads ../testdata/name (the IETF vectors kept in keys/mls) into v.
func loadVectors(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// tally counts vector cases for the summary line the lead reports.
type tally struct {
	file                 string
	ran, passed, skipped int
	suites               map[uint16]bool
}

func newTally(file string) *tally { return &tally{file: file, suites: map[uint16]bool{}} }

// run runs one case as a subtest and counts it.
func (c *tally) run(t *testing.T, name string, cs uint16, f func(t *testing.T)) {
	c.ran++
	if cs != 0 {
		c.suites[cs] = true
	}
	if t.Run(name, f) {
		c.passed++
	}
}

func (c *tally) report(t *testing.T) {
	var ids []uint16
	for id := range c.suites {
		ids = append(ids, id)
	}
	sortU16(ids)
	t.Logf("%s: %d cases ran, %d passed, %d skipped (suites %v)", c.file, c.ran, c.passed, c.skipped, ids)
}

func sortU16(s []uint16) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
