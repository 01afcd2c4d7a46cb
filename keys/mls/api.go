package mls

import (
	"hearth/keys/mls/treemath"
)

// Names of the subpackages that callers of package mls use, kept here so
// that package mls stays the one import a client or server needs (see
// "Public surface" in doc.go).

// LeafIndex is treemath.LeafIndex.
type LeafIndex = treemath.LeafIndex
