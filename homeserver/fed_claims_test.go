package homeserver

import (
	"context"
	"fmt"
	"testing"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// TestFederationClaimsBounded: a remote server cannot drain a user's
// single-use KeyPackages. alice@a claims bob@b's packages again and again:
// the first ClaimBurstPerRequester claims get single-use packages, the
// rest bob's last-resort package (never nothing), and bob keeps the rest of
// his single-use packages; another user of a gets single-use ones until
// the origin's budget is spent, then last-resort ones too.
func TestFederationClaimsBounded(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	b.stop()
	b.cfg.Federation.ClaimBurstPerRequester, b.cfg.Federation.ClaimRatePerRequester = 5, 0.001
	b.cfg.Federation.ClaimBurstPerOrigin, b.cfg.Federation.ClaimRatePerOrigin = 8, 0.001
	b.start()
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, carol := a.addUser("carol")
	_, bob := b.addUser("bob")
	var pkgs []string
	for i := range 50 {
		pkgs = append(pkgs, fmt.Sprintf("kp-%d", i))
	}
	bob.must(publish(pkgs, "kp-last"))
	got := func(c *client) (single, last int) {
		for range 10 {
			res := c.call(claim([]string{"bob@b.example"}))
			p := res.GetClaim().GetPackages()
			if len(p) != 1 {
				t.Fatalf("claim answered %v", res)
			}
			if p[0].LastResort {
				if string(p[0].KeyPackage) != "kp-last" {
					t.Fatalf("last resort %q", p[0].KeyPackage)
				}
				last++
			} else {
				single++
			}
		}
		return
	}
	if s, l := got(alice); s != 5 || l != 5 {
		t.Fatalf("alice: %d single-use, %d last-resort; want 5 and 5", s, l)
	}
	// carol: her own budget of 5, but a's budget (8) has 3 left... plus
	// the 5 alice's over-budget claims took from it: a's budget is spent.
	if s, l := got(carol); s+l != 10 || s > 3 {
		t.Fatalf("carol: %d single-use, %d last-resort", s, l)
	}
	var left int
	b.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		left, err = tx.CountKeyPackages(bob.device)
		return err
	})
	if left < 50-8 {
		t.Fatalf("bob has %d single-use packages left of 50 after 20 remote claims; want at least 42", left)
	}
	_ = wire.Code_CODE_OK
}
