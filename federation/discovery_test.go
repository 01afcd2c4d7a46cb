package federation

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
	"hearth/keys/testutil"
)

// tableResolver answers from a table and counts lookups; a name not in
// it does not exist (NXDOMAIN). Nothing leaves the machine.
type tableResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
	fail  map[string]error
	calls int
}

func (r *tableResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if err := r.fail[host]; err != nil {
		return nil, err
	}
	if a, ok := r.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *tableResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// discoveryRig is a Discovery whose names resolve to 127.0.0.1 and whose
// port 443 is a real TLS server on loopback serving handler.
type discoveryRig struct {
	d     *Discovery
	res   *tableResolver
	clock *fakeClock
	dials atomic.Int64
}

func newDiscoveryRig(t *testing.T, handler http.Handler) *discoveryRig {
	t.Helper()
	cert, caPEM := selfSigned(t, "*.example")
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	rig := &discoveryRig{res: &tableResolver{hosts: map[string][]string{}, fail: map[string]error{}},
		clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}}
	target := srv.Listener.Addr().String()
	rig.d = &Discovery{Resolver: rig.res, RootCAs: pool, TestNames: true, Now: rig.clock.Now,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			rig.dials.Add(1)
			if addr != "127.0.0.1:443" {
				return nil, errors.New("test network: only 127.0.0.1:443")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}}
	return rig
}

// keyDocHandler serves a valid key document for whatever Host is asked
// (httptest's certificate names example.com).
func keyDocHandler(t *testing.T) http.Handler {
	k, err := serverkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(NewKeyDocument(r.Host, "hearth."+r.Host+":7443", serverkey.PublicKey{ID: k.ID(), Key: k.Public()}))
	})
}

func wantKind(t *testing.T, err error, kind fedwire.Code, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != kind || !strings.Contains(e.Msg, msg) {
		t.Fatalf("got %v, want %s with %q", err, kind, msg)
	}
}

// TestDiscoveryNames: special-use names are answered at once, without a
// lookup, as having no server; what is not a domain name is refused.
func TestDiscoveryNames(t *testing.T) {
	rig := newDiscoveryRig(t, keyDocHandler(t))
	rig.d.TestNames = false
	for _, tc := range []struct {
		domain string
		kind   fedwire.Code
		msg    string
	}{
		{"nowhere.invalid", fedwire.Code_CODE_NOT_FOUND, "no Hearth server for nowhere.invalid"},
		{"invalid", fedwire.Code_CODE_NOT_FOUND, "no Hearth server for invalid"},
		{"localhost", fedwire.Code_CODE_NOT_FOUND, "no Hearth server"},
		{"a.localhost", fedwire.Code_CODE_NOT_FOUND, "no Hearth server"},
		{"printer.local", fedwire.Code_CODE_NOT_FOUND, "no Hearth server"},
		{"x.onion", fedwire.Code_CODE_NOT_FOUND, "no Hearth server"},
		{"b.test", fedwire.Code_CODE_NOT_FOUND, "no Hearth server for b.test"},
		{"b.example", fedwire.Code_CODE_NOT_FOUND, "no Hearth server for b.example"},
		{"127.0.0.1", fedwire.Code_CODE_BAD_REQUEST, "IP address"},
		{"10.1.2.3", fedwire.Code_CODE_BAD_REQUEST, "IP address"},
		{"::1", fedwire.Code_CODE_BAD_REQUEST, "IP address"},
		{"[::1]", fedwire.Code_CODE_BAD_REQUEST, "IP address"},
		{"127.1", fedwire.Code_CODE_BAD_REQUEST, "numeric"},
		{"intranet", fedwire.Code_CODE_BAD_REQUEST, "single-label"},
		{"Upper.Case", fedwire.Code_CODE_BAD_REQUEST, "not a server domain"},
		{"", fedwire.Code_CODE_BAD_REQUEST, "not a server domain"},
	} {
		_, _, err := rig.d.Discover(t.Context(), tc.domain)
		wantKind(t, err, tc.kind, tc.msg)
		if !Permanent(err) {
			t.Errorf("%s: %v is not permanent", tc.domain, err)
		}
	}
	if n := rig.res.count(); n != 0 || rig.dials.Load() != 0 {
		t.Fatalf("%d lookups, %d dials for names that must not be looked up", n, rig.dials.Load())
	}
}

// TestDiscoveryNXDOMAIN: a name that does not exist is a permanent
// NOT_FOUND, remembered for Hold: N requests make one lookup, and one
// more after the hold.
func TestDiscoveryNXDOMAIN(t *testing.T) {
	rig := newDiscoveryRig(t, keyDocHandler(t))
	for range 50 {
		_, _, err := rig.d.Discover(t.Context(), "gone.example")
		wantKind(t, err, fedwire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")
	}
	if n := rig.res.count(); n != 1 {
		t.Fatalf("%d lookups for 50 requests within the hold, want 1", n)
	}
	rig.clock.Add(10*time.Minute - time.Second)
	rig.d.Discover(t.Context(), "gone.example")
	if n := rig.res.count(); n != 1 {
		t.Fatalf("looked up again before the hold ran out (%d)", n)
	}
	rig.clock.Add(2 * time.Second)
	rig.d.Discover(t.Context(), "gone.example")
	if n := rig.res.count(); n != 2 {
		t.Fatalf("%d lookups after the hold, want 2", n)
	}
	if rig.dials.Load() != 0 {
		t.Fatal("dialled a name that does not exist")
	}
}

// TestDiscoveryTemporary: a lookup timeout is retryable; it is remembered
// for a backoff that grows, then tried again; success clears it.
func TestDiscoveryTemporary(t *testing.T) {
	rig := newDiscoveryRig(t, keyDocHandler(t))
	rig.res.fail["slow.example"] = &net.DNSError{Err: "i/o timeout", Name: "slow.example", IsTimeout: true}
	_, _, err := rig.d.Discover(t.Context(), "slow.example")
	wantKind(t, err, fedwire.Code_CODE_UNAVAILABLE, "slow.example is unreachable")
	if Permanent(err) || !Retryable(KindOf(err)) {
		t.Fatalf("%v: want retryable", err)
	}
	if strings.Contains(err.(*Error).Msg, "i/o timeout") {
		t.Fatalf("message %q carries the lookup's detail", err.(*Error).Msg)
	}
	_, _, err = rig.d.Discover(t.Context(), "slow.example")
	wantKind(t, err, fedwire.Code_CODE_UNAVAILABLE, "retrying in")
	if n := rig.res.count(); n != 1 {
		t.Fatalf("%d lookups within the first backoff, want 1", n)
	}
	// First backoff: at most 1s. Second: between 1s and 2s.
	rig.clock.Add(1001 * time.Millisecond)
	rig.d.Discover(t.Context(), "slow.example")
	if n := rig.res.count(); n != 2 {
		t.Fatalf("%d lookups after the first backoff, want 2", n)
	}
	rig.clock.Add(999 * time.Millisecond)
	rig.d.Discover(t.Context(), "slow.example")
	if n := rig.res.count(); n != 2 {
		t.Fatalf("the second backoff did not grow (%d lookups)", n)
	}
	rig.clock.Add(1002 * time.Millisecond)
	delete(rig.res.fail, "slow.example")
	rig.res.hosts["slow.example"] = []string{"127.0.0.1"}
	doc, set, err := rig.d.Discover(t.Context(), "slow.example")
	if err != nil || doc.Federation != "hearth.slow.example:7443" || len(set.Keys()) != 1 {
		t.Fatalf("after recovery: %v %v", doc, err)
	}
}

// TestDiscoveryRefusals: a redirect is not followed, an oversized or
// invalid document is refused, 404 means no server; each is permanent.
func TestDiscoveryRefusals(t *testing.T) {
	var hits atomic.Int64
	rig := newDiscoveryRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.Host {
		case "redirect.example":
			http.Redirect(w, r, "https://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "big.example":
			w.Write([]byte(`{"server":"big.example","pad":"` + strings.Repeat("x", 100<<10) + `"}`))
		case "junk.example":
			w.Write([]byte("<html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	for _, d := range []string{"redirect.example", "big.example", "junk.example", "none.example"} {
		rig.res.hosts[d] = []string{"127.0.0.1"}
	}
	for _, tc := range []struct{ domain, msg string }{
		{"redirect.example", "redirects"},
		{"big.example", "too large"},
		{"junk.example", "invalid"},
		{"none.example", "no Hearth server for none.example"},
	} {
		_, _, err := rig.d.Discover(t.Context(), tc.domain)
		wantKind(t, err, fedwire.Code_CODE_NOT_FOUND, tc.msg)
	}
	if n := hits.Load(); n != 4 {
		t.Fatalf("%d requests served, want 4 (the redirect not followed)", n)
	}
}

// TestDiscoveryBounded: 100 concurrent requests for one name make one
// fetch; requests for 100 different names make at most Burst lookups.
func TestDiscoveryBounded(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int64
	rig := newDiscoveryRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		http.NotFound(w, r)
	}))
	rig.res.hosts["one.example"] = []string{"127.0.0.1"}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			_, _, err := rig.d.Discover(t.Context(), "one.example")
			errs <- err
		})
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if hits.Load() == 0 {
			return errors.New("no fetch arrived")
		}
		return nil
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		wantKind(t, err, fedwire.Code_CODE_NOT_FOUND, "no Hearth server for one.example")
	}
	if n := rig.res.count(); n != 1 || hits.Load() != 1 {
		t.Fatalf("%d lookups, %d fetches for one name, want 1 each", n, hits.Load())
	}

	before := rig.res.count()
	limited := 0
	for i := range 100 {
		_, _, err := rig.d.Discover(t.Context(), "n"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example")
		if e, ok := err.(*Error); ok && strings.Contains(e.Msg, "too many discoveries") {
			limited++
		}
	}
	if n := rig.res.count() - before; n > 20 || limited < 80 {
		t.Fatalf("100 names: %d lookups (want at most the burst of 20), %d refused at once", n, limited)
	}
}

// TestDiscoveryFederationAddress: the "federation" address of a
// discovered key document must be a public host name: an IP literal
// (loopback, internal or any other), a single-label or special-use name
// is refused as "no server" and never dialled; a host name is taken. At
// dial time, a discovered peer's name resolving to loopback, private or
// link-local addresses is refused (PublicAddress).
func TestDiscoveryFederationAddress(t *testing.T) {
	k, _ := serverkey.Generate(rand.Reader)
	addrs := map[string]string{
		"loop.example":     "127.0.0.1:7443",
		"v6.example":       "[::1]:7443",
		"meta.example":     "169.254.169.254:80",
		"internal.example": "10.0.0.7:8448",
		"public.example":   "203.0.113.9:443", // any IP literal: not a name
		"single.example":   "intranet:7443",
		"local.example":    "localhost:7443",
		"badport.example":  "hearth.badport.example:0",
		"good.example":     "hearth.good.example:7443",
	}
	rig := newDiscoveryRig(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(NewKeyDocument(r.Host, addrs[r.Host], serverkey.PublicKey{ID: k.ID(), Key: k.Public()}))
	}))
	for d := range addrs {
		rig.res.hosts[d] = []string{"127.0.0.1"}
	}
	for d, a := range addrs {
		doc, _, err := rig.d.Discover(t.Context(), d)
		if d == "good.example" {
			if err != nil || doc.Federation != a {
				t.Fatalf("%s: %v %v", d, doc, err)
			}
			continue
		}
		wantKind(t, err, fedwire.Code_CODE_NOT_FOUND, "federation address")
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1"} {
		if PublicAddress(net.ParseIP(ip)) {
			t.Errorf("%s counted as public", ip)
		}
	}
	if !PublicAddress(net.ParseIP("203.0.113.9")) {
		t.Error("a public address refused")
	}
}
