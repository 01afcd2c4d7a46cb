package loadgen

import (
	"runtime/debug"
	"testing"
)

// TestGCPercentRead: the report reads the GC target without setting it.
func TestGCPercentRead(t *testing.T) {
	was := debug.SetGCPercent(250)
	defer debug.SetGCPercent(was)
	if p := gcPercent(); p != 250 {
		t.Fatalf("gcPercent %d, want 250", p)
	}
}
