package treemath

import (
	"testing"

	"hearth/keys/mls/internal/vectortest"
)

// The IETF vectors' helpers, shared by keys/mls and its subpackages.
type (
	hexBytes = vectortest.Hex
	tally    = vectortest.Tally
)

func newTally(file string) *tally { return vectortest.NewTally(file) }

func loadVectors(t testing.TB, name string, v any) { t.Helper(); vectortest.Load(t, name, v) }
