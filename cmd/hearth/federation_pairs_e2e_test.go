package main

import (
	"path/filepath"
	"strings"
	"testing"

	"hearth/homeserver/certs"
)

// pairHistory is p's history with peer as "from:text" lines, checked to be
// in conversation order with every message once.
func pairHistory(t *testing.T, p *profile, peer string) []string {
	t.Helper()
	var out []string
	var last uint64
	seen := map[string]bool{}
	for _, m := range parseMsgs(t, p.must(t, "", "history", peer, "--json")) {
		if m.Seq <= last || seen[m.ID] {
			t.Fatalf("%s history with %s out of order or repeated at %+v", p.dir, peer, m)
		}
		last, seen[m.ID] = m.Seq, true
		out = append(out, m.ID+" "+m.From+":"+m.Text)
	}
	return out
}

// TestFederationPairsChatE2E: three `hearth serve` processes (a, b, c),
// one user on each; `hearth chat send/recv/history` across every pair
// (a<->b, b<->c, a<->c), both directions; both sides of each pair hold
// the identical history. Then a rotates its federation signing key with
// the admin CLI and a->b, a->c traffic goes on with no admin action on b
// or c.
func TestFederationPairsChatE2E(t *testing.T) {
	parallelE2E(t)
	servers := []*fedServer{newFedServer(t, "a.example"), newFedServer(t, "b.example"), newFedServer(t, "c.example")}
	for _, x := range servers {
		for _, y := range servers {
			if x != y {
				x.admin(t, "", "federation", "peer", "add", y.domain, "--address", y.listen, "--ca", filepath.Join(y.dir, certs.CAFile))
			}
		}
	}
	names := []string{"alice", "bob", "carol"}
	var ps []*profile
	var addrs []string
	for i, s := range servers {
		mustHearth(t, password(names[i]), "admin", "--dir", s.dir, "user", "add", names[i], "--password-stdin")
		p := newProfile(t, names[i])
		addrs = append(addrs, names[i]+"@"+s.domain)
		p.must(t, password(names[i]), "login", addrs[i], "--server", s.listen, "--ca", filepath.Join(s.dir, certs.CAFile), "--password-stdin")
		ps = append(ps, p)
	}
	pairs := [][2]int{{0, 1}, {1, 2}, {0, 2}}
	round := func(tag string, dirs [][2]int) {
		t.Helper()
		for _, d := range dirs {
			x, y := d[0], d[1]
			text := tag + " from " + names[x] + " to " + names[y]
			ps[x].must(t, "", "send", addrs[y], text)
			expectRecv(t, ps[y], addrs[x]+":"+text)
		}
	}
	var both [][2]int
	for _, pr := range pairs {
		both = append(both, pr, [2]int{pr[1], pr[0]})
	}
	round("hello", both)

	before := servers[0].federation(t).KeyID
	out := servers[0].admin(t, "", "federation", "key", "rotate", "--grace", "0s")
	after := servers[0].federation(t).KeyID
	if after == before || !strings.Contains(out, after+" is current") || !strings.Contains(out, before+" retired") {
		t.Fatalf("rotate printed %q; key %s -> %s", out, before, after)
	}
	round("rotated", [][2]int{{0, 1}, {0, 2}, {1, 0}, {2, 0}})

	for _, pr := range pairs {
		x, y := pr[0], pr[1]
		hx, hy := pairHistory(t, ps[x], addrs[y]), pairHistory(t, ps[y], addrs[x])
		if strings.Join(hx, "\n") != strings.Join(hy, "\n") {
			t.Fatalf("%s and %s histories differ:\n%s\n--\n%s", names[x], names[y], strings.Join(hx, "\n"), strings.Join(hy, "\n"))
		}
		want := 2
		if x == 0 {
			want = 4
		}
		if len(hx) != want {
			t.Fatalf("%s<->%s history has %d messages, want %d:\n%s", names[x], names[y], len(hx), want, strings.Join(hx, "\n"))
		}
	}
}
