package main

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hearth/homeserver/certs"
)

// receiptsFed runs the federated receipt tests: TestReceiptsDirectE2E's
// two-server case and TestReceiptsGroupE2E (about 25 s and 50 s, in
// parallel with the other end-to-end tests). On by default since the
// receipt window made them quick enough for every run; -receipts.fed=false
// leaves them out of a quick local loop.
var receiptsFed = flag.Bool("receipts.fed", true, "run the federated receipt tests (two-server 1:1, three-server group of five); false leaves them out")

func skipUnlessReceiptsFed(t *testing.T) {
	t.Helper()
	if !*receiptsFed {
		t.Skip("federated receipt test: left out with -receipts.fed=false")
	}
	slowRecv.Store(t.Name(), true)
}

// newFederation starts servers for domains, each peered with every other.
func newFederation(t *testing.T, domains ...string) []*fedServer {
	t.Helper()
	var servers []*fedServer
	for _, d := range domains {
		servers = append(servers, newFedServer(t, d))
	}
	for _, x := range servers {
		for _, y := range servers {
			if x != y {
				x.admin(t, "", "federation", "peer", "add", y.domain, "--address", y.listen, "--ca", filepath.Join(y.dir, certs.CAFile))
			}
		}
	}
	return servers
}

// fedUser creates user name on s and logs a first device in.
func fedUser(t *testing.T, s *fedServer, name string) *profile {
	t.Helper()
	mustHearth(t, password(name), "admin", "--dir", s.dir, "user", "add", name, "--password-stdin")
	p := newProfile(t, name)
	p.must(t, password(name), "login", name+"@"+s.domain, "--server", s.listen, "--ca", filepath.Join(s.dir, certs.CAFile), "--password-stdin")
	return p
}

// TestReceiptsGroupE2E: a group of five users on three servers, created
// by alice (two devices). Every member's delivery moves alice's message to
// delivered; each member's read moves its "read by" count on both of
// alice's devices alike; erin, with read receipts off, still sends them in
// the group; a read on one of alice's devices is read on the other too.
func TestReceiptsGroupE2E(t *testing.T) {
	parallelE2E(t)
	skipUnlessReceiptsFed(t)
	servers := newFederation(t, "a.example", "b.example", "c.example")
	a, b, c := servers[0], servers[1], servers[2]
	a1 := fedUser(t, a, "alice")
	a2 := newProfile(t, "alice")
	linkDevice(t, &chatNet{dir: a.dir, srv: a.srv, ca: filepath.Join(a.dir, certs.CAFile), domain: a.domain}, a2, a1)
	others := []*profile{fedUser(t, b, "bob"), fedUser(t, c, "carol"), fedUser(t, a, "dave"), fedUser(t, c, "erin")}
	at := map[*profile]string{a1: "alice@a.example", a2: "alice@a.example", others[0]: "bob@b.example",
		others[1]: "carol@c.example", others[2]: "dave@a.example", others[3]: "erin@c.example"}
	var members []string
	for _, p := range others {
		members = append(members, at[p])
	}
	erin := others[3]
	erin.must(t, "", "settings", "read-receipts", "off")

	out := strings.Split(strings.TrimSpace(a1.must(t, "", "group", "create", "five", "--members", strings.Join(members, ","))), "\n")
	conv := out[len(out)-1]
	if !strings.HasSuffix(conv, "@a.example") {
		t.Fatalf("group create printed %q", out)
	}
	for _, p := range append([]*profile{a2}, others...) {
		p.must(t, "", "recv", "--timeout", "2s") // join
	}
	g1 := sendID(t, a1, conv, "g1")
	for _, p := range others {
		if _, texts := recvReceipts(t, p); !slices.Contains(texts, "g1") {
			t.Fatalf("%s received %v, want g1", at[p], texts)
		}
	}
	sorted4 := sorted(members...)
	for _, p := range []*profile{a1, a2} {
		recvReceipts(t, p)
		checkStatus(t, p, conv, g1, "delivered", sorted4, nil)
	}

	// Each member's read moves the count, on both of alice's devices.
	var readers []string
	for i, p := range others {
		p.must(t, "", "read", conv)
		readers = append(readers, at[p])
		status := "delivered"
		if i == len(others)-1 {
			status = "read"
		}
		for _, d := range []*profile{a1, a2} {
			recvReceipts(t, d)
			checkStatus(t, d, conv, g1, status, sorted4, sorted(readers...))
		}
	}

	// A read on a1 is a read on a2: a2 prints it, and reading there
	// again sends nothing that bob would see.
	g2 := sendID(t, others[0], conv, "g2")
	recvReceipts(t, a1)
	a1.must(t, "", "read", conv)
	evs, texts := recvReceipts(t, a2)
	if !slices.Contains(texts, "g2") || !slices.Contains(receiptIDs(t, evs, "read", "alice@a.example", map[string]bool{}), g2) {
		t.Fatalf("a2 got %v and receipts %+v; want g2 and alice's read of it", texts, evs)
	}
	a2.must(t, "", "read", conv)
	evs, _ = recvReceipts(t, others[0])
	if got := receiptIDs(t, evs, "read", "alice@a.example", map[string]bool{}); !slices.Equal(got, []string{g2}) {
		t.Fatalf("bob saw alice's reads of %v (%+v), want [%s] once", got, evs, g2)
	}
}
