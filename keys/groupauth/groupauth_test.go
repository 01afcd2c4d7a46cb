package groupauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func TestNeedsAdmin(t *testing.T) {
	r := Roster{Members: []string{"a@x/1", "a@x/2", "b@x/1"}, Committer: "a@x/1",
		Revoked: func(d string) bool { return d == "b@x/9" }}
	cases := []struct {
		name string
		c    Change
		want bool
	}{
		{"own new device", Change{Added: []string{"a@x/3"}}, false},
		{"other member's new device", Change{Added: []string{"b@x/2"}}, false},
		{"new user", Change{Added: []string{"c@x/1"}}, true},
		{"own device removed (leave/sync)", Change{Removed: []string{"a@x/2"}}, false},
		{"other user's device", Change{Removed: []string{"b@x/1"}}, true},
		{"other user's revoked device", Change{Removed: []string{"b@x/9"}}, false},
		{"extensions", Change{ExtChanged: true}, true},
	}
	for _, tc := range cases {
		if got := NeedsAdmin(r, tc.c); got != tc.want {
			t.Errorf("%s: NeedsAdmin = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	r := Roster{Members: []string{"a@x/1", "b@x/1"}, Committer: "a@x/1"}
	c := Change{Added: []string{"c@x/2", "c@x/1"}, Removed: []string{"b@x/1"}}
	sig := Sign(priv, "g@x", 7, c)
	if err := Check(pub, "g@x", 7, r, c, sig); err != nil {
		t.Fatal(err)
	}
	// Order of the lists does not matter; everything else does.
	if err := Check(pub, "g@x", 7, r, Change{Added: []string{"c@x/1", "c@x/2"}, Removed: []string{"b@x/1"}}, sig); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func() error{
		"no signature": func() error { return Check(pub, "g@x", 7, r, c, nil) },
		"other key":    func() error { return Check(other, "g@x", 7, r, c, sig) },
		"other epoch":  func() error { return Check(pub, "g@x", 8, r, c, sig) },
		"other group":  func() error { return Check(pub, "h@x", 7, r, c, sig) },
		"other change": func() error {
			return Check(pub, "g@x", 7, r, Change{Added: []string{"c@x/1"}, Removed: []string{"b@x/1"}}, sig)
		},
		"no admin key": func() error { return Check(nil, "g@x", 7, r, c, sig) },
		"new admin key": func() error {
			return Check(pub, "g@x", 7, r, Change{Added: c.Added, Removed: c.Removed, ExtChanged: true}, sig)
		},
	}
	for name, f := range bad {
		if err := f(); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	// A change that needs no admin passes without a signature.
	if err := Check(nil, "g@x", 7, r, Change{Added: []string{"a@x/5"}}, nil); err != nil {
		t.Fatal(err)
	}
}
