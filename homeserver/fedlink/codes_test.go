package fedlink

import (
	"testing"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

// TestCodesRoundTrip: every code of either enum maps to the other side and
// back to itself, or is in the deliberate collapses listed here; a code
// appended to either enum fails this test until it is placed.
func TestCodesRoundTrip(t *testing.T) {
	// wire codes a peer has no use for: they reach it as CODE_BAD_REQUEST.
	wireCollapsed := map[wire.Code]fedwire.Code{
		wire.Code_CODE_INTERNAL: fedwire.Code_CODE_INTERNAL, // and a peer's INTERNAL is UNAVAILABLE to a device
	}
	for _, c := range []wire.Code{wire.Code_CODE_UNAUTHENTICATED, wire.Code_CODE_BAD_CREDENTIALS,
		wire.Code_CODE_DEVICE_REVOKED, wire.Code_CODE_PENDING_APPROVAL, wire.Code_CODE_USER_DISABLED,
		wire.Code_CODE_CONFLICT, wire.Code_CODE_LIMIT, wire.Code_CODE_VERSION, wire.Code_CODE_BAD_SIGNATURE} {
		wireCollapsed[c] = fedwire.Code_CODE_BAD_REQUEST
	}
	for n, name := range wire.Code_name {
		c := wire.Code(n)
		f := fedKind(c)
		if want, ok := wireCollapsed[c]; ok {
			if f != want {
				t.Errorf("wire %s -> fedwire %s, want the collapse to %s", name, f, want)
			}
			continue
		}
		if back := wireKind(f); back != c {
			t.Errorf("wire %s -> fedwire %s -> wire %s: no round trip and not a listed collapse", name, f, back)
		}
	}
	// fedwire codes a device has no use for.
	fedCollapsed := map[fedwire.Code]wire.Code{
		fedwire.Code_CODE_INTERNAL:      wire.Code_CODE_UNAVAILABLE,
		fedwire.Code_CODE_BAD_SIGNATURE: wire.Code_CODE_BAD_SIGNATURE,
		// Server-to-server refusals: a bad request to a device.
		fedwire.Code_CODE_WRONG_DESTINATION: wire.Code_CODE_BAD_REQUEST,
		fedwire.Code_CODE_CLOCK_SKEW:        wire.Code_CODE_BAD_REQUEST,
		fedwire.Code_CODE_REPLAY:            wire.Code_CODE_BAD_REQUEST,
	}
	for n, name := range fedwire.Code_name {
		c := fedwire.Code(n)
		w := wireKind(c)
		if want, ok := fedCollapsed[c]; ok {
			if w != want {
				t.Errorf("fedwire %s -> wire %s, want %s", name, w, want)
			}
			continue
		}
		if back := fedKind(w); back != c {
			t.Errorf("fedwire %s -> wire %s -> fedwire %s: no round trip and not a listed collapse", name, w, back)
		}
	}
	if got := fedKindOf(&federation.Error{Kind: fedwire.Code_CODE_REPLAY}); got != fedwire.Code_CODE_REPLAY {
		t.Errorf("fedKindOf(federation.Error REPLAY) = %s", got)
	}
	if got := fedKindOf(wire.Errorf("op", wire.Code_CODE_STALE_EPOCH, "x")); got != fedwire.Code_CODE_STALE_EPOCH {
		t.Errorf("fedKindOf(wire STALE_EPOCH) = %s", got)
	}
}
