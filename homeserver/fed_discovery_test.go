package homeserver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// fakeResolver answers discovery's name lookups from a table of loopback
// addresses and counts them; a name not in the table does not exist
// (NXDOMAIN). Nothing leaves the machine.
type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string]string // domain -> 127.0.0.N
	fail  map[string]error  // domain -> lookup error
	calls map[string]int
	to    map[string]string // 127.0.0.N:443 -> the node's HOST:PORT
	dials int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{hosts: map[string]string{}, fail: map[string]error{}, calls: map[string]int{}, to: map[string]string{}}
}

// set makes domain resolve to a loopback address whose port 443 is addr.
func (r *fakeResolver) set(domain, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ip, ok := r.hosts[domain]
	if !ok {
		ip = fmt.Sprintf("127.0.0.%d", len(r.hosts)+2)
		r.hosts[domain] = ip
	}
	r.to[net.JoinHostPort(ip, "443")] = addr
}

func (r *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[host]++
	if err := r.fail[host]; err != nil {
		return nil, err
	}
	if ip, ok := r.hosts[host]; ok {
		return []string{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

func (r *fakeResolver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

func (r *fakeResolver) dialCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dials
}

func (r *fakeResolver) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	to, ok := r.to[addr]
	r.dials++
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("test network: nothing listens at %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

// loopbackDiscovery sets cfg up to discover the nodes (and .example
// names) through a fake resolver on loopback, trusting the nodes' CAs.
func loopbackDiscovery(nodes ...*fedNode) (*fakeResolver, []byte) {
	r := newFakeResolver()
	var pems []byte
	for _, n := range nodes {
		r.set(n.domain, n.addr)
		pems = append(pems, n.caPEM...)
	}
	return r, pems
}

func (n *fedNode) useDiscovery(r *fakeResolver, pems []byte) {
	f := &n.cfg.Federation
	f.Resolver, f.DiscoveryDial, f.DiscoverTestNames, f.DiscoveryCAPEM = r, r.dial, true, pems
	f.DiscoverTestAddresses = true // the documents name loopback addresses
}

// TestFederationDiscovery: two servers that have not pinned each other
// find each other through https://DOMAIN/.well-known/hearth/server (over
// real TLS on loopback, with an injected resolver and root CA): the key
// document gives the federation address and the keys; a conversation
// flows both ways. A domain whose name the certificate does not carry is
// refused.
func TestFederationDiscovery(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	res, pems := loopbackDiscovery(a, b)
	for _, n := range []*fedNode{a, b} {
		n.stop()
		n.useDiscovery(res, pems)
		n.start()
	}
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "disc@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	if w := collect(t, bob, 1, fedWait)[0]; w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME {
		t.Fatalf("bob got %v", w)
	}
	if ok := sendRetry(t, bob, appMsg(conv, "hi", 1, "via discovery"), fedWait); ok.ConversationSeq != 2 {
		t.Fatalf("bob's send: %v", ok)
	}
	if d := collect(t, alice, 1, fedWait)[0]; string(d.Payload) != "via discovery" {
		t.Fatalf("alice got %v", d)
	}
	info, err := a.s.FederationList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Peers) != 1 || info.Peers[0].Domain != "b.example" || info.Peers[0].Pinned {
		t.Fatalf("a's peers %+v, want b.example unpinned", info.Peers)
	}

	// A discovered document is fetched again once it is over an hour old:
	// a's view of b's keys follows b's rotation then.
	rot, err := b.s.FederationKeyRotate(t.Context(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	has := func() bool {
		set, err := a.s.fed.Peers.ServerKeys(t.Context(), "b.example")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range set.Keys() {
			if string(k.ID) == rot.Current {
				return true
			}
		}
		return false
	}
	if has() {
		t.Fatal("a refetched b's fresh document before it was an hour old")
	}
	a.skew.Store(int64(2 * time.Hour))
	if !has() {
		t.Fatal("a kept b's document after an hour")
	}
	a.skew.Store(0)

	// c.example "resolves" to b, whose certificate is not for c.example.
	res.set("c.example", b.addr)
	if _, err := a.s.fed.Peers.ServerKeys(t.Context(), "c.example"); err == nil {
		t.Fatal("keys of c.example accepted from a server with b.example's certificate")
	}
}

// TestFederationNoServerExpiresQueue: a's DELIVER for b.example waits in
// its queue while b is away; when discovery then says b.example has no
// server (NXDOMAIN), the queued envelope expires at once and the sending
// device gets the delivery-failed notice — not after the 7-day expiry.
func TestFederationNoServerExpiresQueue(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	res, pems := loopbackDiscovery(a, b)
	for _, n := range []*fedNode{a, b} {
		n.stop()
		n.useDiscovery(res, pems)
		n.start()
	}
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "gone@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait)
	drained(t, a)

	// b is gone, and so is its name; a restarts (nothing cached).
	b.stop()
	res.mu.Lock()
	delete(res.hosts, "b.example")
	res.mu.Unlock()
	a.stop()
	a.start()
	alice = a.resume(alice, 0)
	ok := sendRetry(t, alice, appMsg(conv, "lost", 1, "to nobody"), fedWait)
	expectNotice(t, alice, conv, "lost", ok.ConversationSeq, "b.example")
	drained(t, a)
}
