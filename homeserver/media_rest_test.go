package homeserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// TestOpenMedia: the REST read of a media (transport GET
// /hearth/v1/media/ID) gives the complete ciphertext to an active device's
// token, and refuses a bad token, a pending device and unknown ids.
func TestOpenMedia(t *testing.T) {
	h := newHarness(t, Config{})
	alice, _ := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	file := randBytes(200_000)
	up := alice.must(upload("", uint64(len(file)), 0, file, true)).GetUploadMedia()
	if up.MediaId == "" {
		t.Fatalf("upload: %v", up)
	}
	ctx := context.Background()
	f, err := h.s.OpenMedia(ctx, bob.access, up.MediaId)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if _, err := h.s.OpenMedia(ctx, "not a token", up.MediaId); !wire.Is(err, wire.Code_CODE_UNAUTHENTICATED) {
		t.Fatalf("bad token: %v", err)
	}
	for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "../../hearth.db", ""} {
		if _, err := h.s.OpenMedia(ctx, bob.access, id); !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
			t.Fatalf("id %q: %v", id, err)
		}
	}
	lk, err := identity.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pending := h.connect()
	pending.login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	if _, err := h.s.OpenMedia(ctx, pending.access, up.MediaId); !wire.Is(err, wire.Code_CODE_PENDING_APPROVAL) {
		t.Fatalf("pending device: %v", err)
	}
}
