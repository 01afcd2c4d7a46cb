package homeserver

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"hearth/homeserver/wire"
)

func TestPasswordHashDefaults(t *testing.T) {
	s := &authority{cfg: Config{}.withDefaults(), rand: &lockedReader{r: rand.Reader}, hashes: newHashGate(1)}
	h, err := s.hashPassword([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the default parameters", h)
	}
	h2, _ := s.hashPassword([]byte("correct horse"))
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	for _, tc := range []struct {
		hash, pw string
		ok       bool
		bad      bool
	}{
		{h, "correct horse", true, false},
		{h, "correct horsf", false, false},
		{h, "", false, false},
		{"$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "x", false, true},
		{"$argon2id$v=19$m=1,t=2,p=1$c2FsdA$aGFzaA", "x", false, true},
		{"garbage", "x", false, true},
	} {
		ok, err := s.verifyPassword(tc.hash, []byte(tc.pw))
		if ok != tc.ok || (err != nil) != tc.bad {
			t.Errorf("verify(%.20q, %q) = %v, %v", tc.hash, tc.pw, ok, err)
		}
	}
	// A hash made with other parameters still verifies.
	s.cfg.Password = PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1}
	old, _ := s.hashPassword([]byte("pw"))
	s.cfg.Password = PasswordParams{Time: 3, MemoryKiB: 2048, Threads: 2}
	if ok, err := s.verifyPassword(old, []byte("pw")); !ok || err != nil {
		t.Fatalf("old parameters: %v %v", ok, err)
	}
}

// TestPasswordHashBound: a login storm computes at most
// Password.MaxConcurrent argon2id hashes at once (each holds its whole
// memory cost), every login still succeeds, and the default bound is
// GOMAXPROCS.
func TestPasswordHashBound(t *testing.T) {
	if got, want := (Config{}).withDefaults().Password.MaxConcurrent, runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("default MaxConcurrent %d, want GOMAXPROCS %d", got, want)
	}
	const bound, users = 2, 12
	// 16 MiB: each hash takes long enough that the twelve logins overlap.
	h := newHarness(t, Config{Password: PasswordParams{Time: 1, MemoryKiB: 16384, Threads: 1, MaxConcurrent: bound}})
	for i := range users {
		h.addUser(fmt.Sprint("storm", i))
	}
	var wg sync.WaitGroup
	for i := range users {
		c := h.connect()
		name := fmt.Sprint("storm", i)
		wg.Go(func() {
			r := c.call(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: name, Password: "password-" + name, DeviceName: "d"}}})
			if r.GetLoginOk() == nil {
				t.Errorf("login %s: %v", name, r)
			}
		})
	}
	wg.Wait()
	if p := h.s.auth.hashes.peak.Load(); p != bound {
		t.Fatalf("peak concurrent hashes %d, want exactly the bound %d (12 logins at once)", p, bound)
	}
	if b := h.s.auth.hashes.busy.Load(); b != 0 {
		t.Fatalf("%d hashes still counted as running", b)
	}
}
