package e2ee

import (
	"bytes"
	"testing"
)

// fakeGroup is a Group whose state is a counter of changes, serialized
// as text; only what the cache calls is implemented.
type fakeGroup struct {
	Group // nil: other methods are not called
	state []byte
}

func (f *fakeGroup) Encrypt(pt []byte) ([]byte, error) {
	f.state = append(f.state, '+')
	return pt, nil
}

func (f *fakeGroup) MarshalSplit() ([]byte, map[string][]byte, error) {
	return bytes.Clone(f.state), nil, nil
}

// fakeEngine restores a fakeGroup from its state and counts restores.
type fakeEngine struct {
	Engine
	loads int
}

func (e *fakeEngine) Load(state []byte, _ func([]byte) ([]byte, error), _ Self, _ CredentialValidator) (Group, error) {
	e.loads++
	return &fakeGroup{state: bytes.Clone(state)}, nil
}

// TestCacheExactBytes: a load gets the cached group back only for exactly
// the bytes it was saved (or restored) under, however the caller's buffer
// changes afterwards (a store's memory is valid only in its transaction),
// and never a group changed since, or one handed out and not given back.
func TestCacheExactBytes(t *testing.T) {
	fe := &fakeEngine{}
	c := NewCache()
	e := c.Wrap(fe)
	load := func(state []byte) Group {
		t.Helper()
		g, err := e.Load(state, nil, Self{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	buf := []byte("state-0")
	g := load(buf)
	if fe.loads != 1 {
		t.Fatalf("%d restores, want 1", fe.loads)
	}
	copy(buf, "XXXXXXX") // the store's memory is reused
	c.Release(g)
	if g2 := load([]byte("state-0")); g2 != g || fe.loads != 1 {
		t.Fatalf("same bytes after the caller's buffer changed: cached %v, restores %d, want the cached group and 1", g2 == g, fe.loads)
	}
	if g3 := load([]byte("state-0")); g3 == g || fe.loads != 2 {
		t.Fatalf("a group handed out and not given back was handed out again (restores %d)", fe.loads)
	}
	if _, err := g.Encrypt([]byte("m")); err != nil { // changed: not reusable under state-0
		t.Fatal(err)
	}
	c.Release(g)
	if g4 := load([]byte("state-0")); g4 == g {
		t.Fatal("a changed group was handed out under its old bytes")
	}
	saved, _, err := g.MarshalSplit()
	if err != nil {
		t.Fatal(err)
	}
	loads := fe.loads
	if g5 := load(saved); g5 != g || fe.loads != loads {
		t.Fatal("the group was not reused under the bytes it saved")
	}
	c.Release(g)
	other := append(bytes.Clone(saved[:len(saved)-1]), 'x') // same length, one byte differs
	if g6 := load(other); g6 == g || fe.loads != loads+1 {
		t.Fatal("a group was handed out for bytes it was not saved under")
	}
}
