package homeserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// loopbackResolver maps HOST:443 to loopback addresses.
type loopbackResolver struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (r *loopbackResolver) set(hostPort, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[hostPort] = to
}

// loopbackDiscovery is an HTTPS client for discovery that resolves each
// test domain's port 443 to its node on 127.0.0.1 and trusts the nodes'
// CAs; any other name fails (nothing leaves the machine).
func loopbackDiscovery(nodes ...*fedNode) (*http.Client, []byte, *loopbackResolver) {
	r := &loopbackResolver{addrs: map[string]string{}}
	addrs := r.addrs
	pool := x509.NewCertPool()
	var pems []byte
	for _, n := range nodes {
		addrs[n.domain+":443"] = n.addr
		pool.AppendCertsFromPEM(n.caPEM)
		pems = append(pems, n.caPEM...)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		r.mu.Lock()
		to, ok := r.addrs[addr]
		r.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("test resolver: no loopback address for %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}, pems, r
}

// TestFederationDiscovery: two servers that have not pinned each other
// find each other through https://DOMAIN/.well-known/hearth/server (over
// real TLS on loopback, with an injected resolver and root CA): the key
// document gives the federation address and the keys; a conversation
// flows both ways. A domain whose name the certificate does not carry is
// refused.
func TestFederationDiscovery(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	hc, pems, res := loopbackDiscovery(a, b)
	for _, n := range []*fedNode{a, b} {
		n.stop()
		n.cfg.Federation.DiscoveryClient, n.cfg.Federation.DiscoveryCAPEM = hc, pems
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
	res.set("c.example:443", b.addr)
	if _, err := a.s.fed.Peers.ServerKeys(t.Context(), "c.example"); err == nil {
		t.Fatal("keys of c.example accepted from a server with b.example's certificate")
	}
}
