package vectortest

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"hearth/keys/mls/suite"
)

// Hex decodes a JSON hex string.
type Hex []byte

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Dir is keys/mls/testdata, found from this file's place in the tree.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// Load reads the vector file name into v.
func Load(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// Tally counts one vector file's cases for its summary line.
type Tally struct {
	file                 string
	ran, passed, skipped int
	suites               map[uint16]bool
}

// NewTally starts counting the cases of file.
func NewTally(file string) *Tally { return &Tally{file: file, suites: map[uint16]bool{}} }

// Run runs one case of suite cs (0: none) as a subtest and counts it.
func (c *Tally) Run(t *testing.T, name string, cs uint16, f func(t *testing.T)) {
	c.ran++
	if cs != 0 {
		c.suites[cs] = true
	}
	if t.Run(name, f) {
		c.passed++
	}
}

// Skip counts a case that is not run, and logs why.
func (c *Tally) Skip(t *testing.T, name string, why string) {
	t.Helper()
	c.skipped++
	t.Logf("%s: %s skipped: %s", c.file, name, why)
}

// Report logs the summary line.
func (c *Tally) Report(t *testing.T) {
	t.Helper()
	var ids []uint16
	for id := range c.suites {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	t.Logf("%s: %d cases ran, %d passed, %d skipped (suites %v)", c.file, c.ran, c.passed, c.skipped, ids)
}

// SuiteCase runs one case of a per-suite vector, or skips (and counts) it
// when suite.Lookup does not implement cs.
func (c *Tally) SuiteCase(t *testing.T, name string, cs uint16, f func(t *testing.T, s *suite.Suite)) {
	s, err := suite.Lookup(suite.ID(cs))
	if err != nil {
		c.Skip(t, name, err.Error())
		return
	}
	c.Run(t, name, cs, func(t *testing.T) { f(t, s) })
}
