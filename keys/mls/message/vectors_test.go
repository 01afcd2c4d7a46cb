package message

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"hearth/keys/mls/suite"
)

// hexBytes decodes a JSON hex string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
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

func (c *tally) skip(t *testing.T, name string, why string) {
	c.skipped++
	t.Logf("%s: %s skipped: %s", c.file, name, why)
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

// suiteCase runs one case of a per-suite vector: skipped (and counted) if
// suite.Lookup does not implement cs.
func (c *tally) suiteCase(t *testing.T, name string, cs uint16, f func(t *testing.T, s *suite.Suite)) {
	s, err := suite.Lookup(suite.ID(cs))
	if err != nil {
		c.skip(t, name, err.Error())
		return
	}
	c.run(t, name, cs, func(t *testing.T) { f(t, s) })
}
