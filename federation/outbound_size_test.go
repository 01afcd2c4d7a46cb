package federation

import (
	"strings"
	"testing"

	"hearth/federation/fedwire"
)

// TestFitTransaction: a batch is cut where the next envelope would pass
// the byte limit; an envelope over the limit on its own still goes, alone.
func TestFitTransaction(t *testing.T) {
	env := func(id string, n int) Queued {
		return Queued{Envelope: &fedwire.Envelope{Id: id, Payload: []byte(strings.Repeat("x", n))}}
	}
	const limit = 64 << 10
	qs := []Queued{env("a", 20<<10), env("b", 20<<10), env("c", 20<<10), env("d", 10)}
	fit, cut := fitTransaction(qs, limit)
	if len(fit) != 2 || !cut {
		t.Fatalf("got %d envelopes (cut %v), want 2 and cut", len(fit), cut)
	}
	fit, cut = fitTransaction(qs[2:], limit)
	if len(fit) != 2 || cut {
		t.Fatalf("rest: got %d envelopes (cut %v), want 2 and not cut", len(fit), cut)
	}
	big := []Queued{env("big", 100<<10), env("e", 10)}
	fit, cut = fitTransaction(big, limit)
	if len(fit) != 1 || fit[0].Envelope.Id != "big" || !cut {
		t.Fatalf("oversized first envelope: got %d (cut %v), want it alone", len(fit), cut)
	}
}
