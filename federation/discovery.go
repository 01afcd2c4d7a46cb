package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"hearth/federation/fedwire"
	"hearth/keys/serverkey"
)

// Resolver looks up the addresses of a host name; *net.Resolver
// satisfies it. Discovery asks nothing else of the network's names.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Discovery finds the key document of a server that is not pinned, at
// https://DOMAIN/.well-known/hearth/server (docs/federation.md,
// "Discovery rules"). It is bounded and cached so that nobody can make
// this server a relay or an oracle:
//
//   - only domain names are looked up: IP literals, single-label names and
//     names with a numeric last label are refused (CODE_BAD_REQUEST), and
//     the special-use names of RFC 6761/6762/7686 (.invalid, localhost,
//     .local, .onion, and .test and .example unless TestNames) are "no
//     such server" (CODE_NOT_FOUND), all without a lookup;
//   - the name is resolved with Resolver, and only the addresses it gave
//     are dialled (port 443); NXDOMAIN is CODE_NOT_FOUND, any other lookup
//     failure CODE_UNAVAILABLE;
//   - redirects are refused, the document is read up to MaxBytes, the
//     whole fetch takes at most Timeout;
//   - a failure is remembered per domain: a permanent one (CODE_NOT_FOUND,
//     CODE_BAD_REQUEST) for Hold, a temporary one for Backoff.Delay of its
//     consecutive count; within that time the same error is answered at
//     once;
//   - one fetch per domain at a time (later callers share its outcome), at
//     most MaxConcurrent fetches at once and Rate per second overall (burst
//     Burst); beyond that the caller is answered CODE_UNAVAILABLE at once.
//
// Errors are *Error: Msg is safe to show a remote server or a device
// ("no Hearth server for nowhere.invalid"); Err carries the detail for the
// local log.
type Discovery struct {
	Resolver Resolver // nil: net.DefaultResolver
	// Dial connects to one address Resolver gave, as IP:443; nil: a
	// net.Dialer. Tests send it to loopback.
	Dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	RootCAs *x509.CertPool // nil: the system roots
	// TestNames lets .test and .example names be looked up (tests, with an
	// injected Resolver); otherwise they are "no such server".
	TestNames bool
	// TestAddresses lets a discovered key document name an IP address
	// (loopback in tests) as its federation address; otherwise it must be
	// a host name that CheckFederationAddress accepts.
	TestAddresses bool
	Timeout       time.Duration // one fetch, lookup included; default 5s
	MaxBytes      int64         // key document size; default 64 KiB
	Hold          time.Duration // a permanent failure is remembered this long; default 10 minutes
	Backoff       Backoff       // temporary failures; default 1s up to 5 minutes, jittered
	MaxConcurrent int           // fetches at once; default 8
	Rate, Burst   float64       // fetches per second overall; default 5, burst 20
	Now           func() time.Time
	Log           *slog.Logger

	once    sync.Once
	lim     *RateLimiter
	mu      sync.Mutex
	failed  map[string]*discoveryFailure
	flights map[string]*discoveryFlight
	active  int
}

type discoveryFailure struct {
	err      *Error
	until    time.Time
	attempts int // consecutive temporary failures
}

type discoveryFlight struct {
	done chan struct{}
	doc  *KeyDocument
	set  *serverkey.Set
	err  error
}

func (d *Discovery) init() {
	d.once.Do(func() {
		if d.Resolver == nil {
			d.Resolver = net.DefaultResolver
		}
		if d.Dial == nil {
			var nd net.Dialer
			d.Dial = nd.DialContext
		}
		if d.Timeout <= 0 {
			d.Timeout = 5 * time.Second
		}
		if d.MaxBytes <= 0 {
			d.MaxBytes = 64 << 10
		}
		if d.Hold <= 0 {
			d.Hold = 10 * time.Minute
		}
		if d.Backoff.Base <= 0 {
			d.Backoff.Base = time.Second
		}
		if d.MaxConcurrent <= 0 {
			d.MaxConcurrent = 8
		}
		if d.Rate <= 0 {
			d.Rate = 5
		}
		if d.Burst <= 0 {
			d.Burst = 20
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Log == nil {
			d.Log = slog.New(slog.DiscardHandler)
		}
		d.lim = &RateLimiter{Rate: d.Rate, Burst: d.Burst, Now: d.Now}
		d.failed = map[string]*discoveryFailure{}
		d.flights = map[string]*discoveryFlight{}
	})
}

// special-use names (RFC 6761, 6762, 7686): never looked up.
var specialNames = []string{"invalid", "localhost", "local", "onion"}

// testTLDs are special-use names tests may look up (Discovery.TestNames).
var testTLDs = []string{"test", "example"}

func hasSuffixLabel(domain string, names []string) bool {
	for _, n := range names {
		if domain == n || strings.HasSuffix(domain, "."+n) {
			return true
		}
	}
	return false
}

// CheckDiscoverable refuses, without any lookup, a name that discovery
// must not look up: CODE_BAD_REQUEST for what is not a domain name (IP
// literals, single labels, a numeric last label), CODE_NOT_FOUND for the
// special-use names (.invalid, localhost, .local, .onion; .test and
// .example unless testNames). A pinned peer is never discovered, so these
// rules do not apply to it.
func CheckDiscoverable(domain string, testNames bool) error {
	const op = "federation.Discover"
	if net.ParseIP(strings.Trim(domain, "[]")) != nil {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%s is an IP address, not a server domain", domain)
	}
	if err := ValidDomain(domain); err != nil {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%q is not a server domain", domain)
	}
	noServer := errorf(op, fedwire.Code_CODE_NOT_FOUND, "no Hearth server for %s", domain)
	if hasSuffixLabel(domain, specialNames) || (!testNames && hasSuffixLabel(domain, testTLDs)) {
		return noServer
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%s is a single-label name, not a server domain", domain)
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return errorf(op, fedwire.Code_CODE_BAD_REQUEST, "%s is not a server domain (numeric top-level label)", domain)
	}
	return nil
}

// CheckFederationAddress checks the "federation" HOST:PORT of a
// discovered key document by the rules of discovery (CheckDiscoverable):
// the host must be a domain name (no IP literal, no single label, no
// special-use name), so that a document cannot send this server to an
// internal address. A pinned peer's address is the admin's and is not
// checked. Where the name resolves is checked when it is dialled
// (PublicAddress).
func CheckFederationAddress(addr string, testNames bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q", port)
	}
	return CheckDiscoverable(host, testNames)
}

// PublicAddress reports whether ip may be dialled for a discovered peer:
// not loopback, unspecified, private, link-local or multicast.
func PublicAddress(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsUnspecified() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast())
}

// Permanent reports whether a discovery error will not change by
// retrying soon (the domain has no Hearth server, or is not a name).
func Permanent(err error) bool {
	switch KindOf(err) {
	case fedwire.Code_CODE_NOT_FOUND, fedwire.Code_CODE_BAD_REQUEST:
		return true
	}
	return false
}

// Discover returns domain's key document and keys, or an *Error.
func (d *Discovery) Discover(ctx context.Context, domain string) (*KeyDocument, *serverkey.Set, error) {
	const op = "federation.Discover"
	d.init()
	if err := CheckDiscoverable(domain, d.TestNames); err != nil {
		return nil, nil, err
	}
	now := d.Now()
	d.mu.Lock()
	if f := d.failed[domain]; f != nil && now.Before(f.until) {
		d.mu.Unlock()
		if Permanent(f.err) {
			return nil, nil, f.err
		}
		return nil, nil, &Error{Op: op, Kind: f.err.Kind, Err: f.err.Err,
			Msg: fmt.Sprintf("%s; retrying in %s", f.err.Msg, retryIn(f.until.Sub(now)))}
	}
	if fl := d.flights[domain]; fl != nil {
		d.mu.Unlock()
		select {
		case <-fl.done:
			return fl.doc, fl.set, fl.err
		case <-ctx.Done():
			return nil, nil, &Error{Op: op, Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: "discovery of " + domain + " is under way", Err: ctx.Err()}
		}
	}
	if d.active >= d.MaxConcurrent {
		d.mu.Unlock()
		return nil, nil, errorf(op, fedwire.Code_CODE_UNAVAILABLE, "too many discoveries under way; retry later")
	}
	if ok, _ := d.lim.Take("", 1); !ok {
		d.mu.Unlock()
		return nil, nil, errorf(op, fedwire.Code_CODE_UNAVAILABLE, "too many discoveries; retry later")
	}
	fl := &discoveryFlight{done: make(chan struct{})}
	d.flights[domain] = fl
	d.active++
	d.mu.Unlock()

	// The fetch is the flight's, not its first caller's: callers that
	// joined it must not see it cancelled because the first one left.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.Timeout)
	fl.doc, fl.set, fl.err = d.fetch(fctx, domain)
	cancel()

	d.mu.Lock()
	delete(d.flights, domain)
	d.active--
	d.record(domain, fl.err)
	d.mu.Unlock()
	close(fl.done)
	return fl.doc, fl.set, fl.err
}

// record remembers the outcome of a fetch; d.mu is held.
func (d *Discovery) record(domain string, err error) {
	if err == nil {
		delete(d.failed, domain)
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Op: "federation.Discover", Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: "discovery of " + domain + " failed", Err: err}
	}
	f := d.failed[domain]
	if f == nil {
		f = &discoveryFailure{}
		d.failed[domain] = f
	}
	f.err = e
	if Permanent(e) {
		f.attempts = 0
		f.until = d.Now().Add(d.Hold)
	} else {
		f.attempts++
		f.until = d.Now().Add(d.Backoff.Delay(f.attempts))
	}
	d.Log.Info("federation: discovery failed", "domain", domain, "code", e.Kind.String(), "until", f.until, "err", e.Error())
	d.prune()
}

// prune drops expired failures once the table is large; d.mu is held.
// The global rate bounds how fast it can grow.
func (d *Discovery) prune() {
	if len(d.failed) < 4096 {
		return
	}
	now := d.Now()
	for k, f := range d.failed {
		if !now.Before(f.until) {
			delete(d.failed, k)
		}
	}
}

// Known reports, without a lookup, a permanent reason why domain has no
// server: CheckDiscoverable's, or a remembered permanent failure. nil
// does not mean the domain has one.
func (d *Discovery) Known(domain string) error {
	d.init()
	if err := CheckDiscoverable(domain, d.TestNames); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.failed[domain]; f != nil && Permanent(f.err) && d.Now().Before(f.until) {
		return f.err
	}
	return nil
}

// Forget drops what is remembered of domain (it was pinned, or an admin
// asks to retry now).
func (d *Discovery) Forget(domain string) {
	d.init()
	d.mu.Lock()
	delete(d.failed, domain)
	d.mu.Unlock()
}

var errRedirect = errors.New("redirects are not followed")

// fetch resolves domain and GETs its key document from the addresses found.
func (d *Discovery) fetch(ctx context.Context, domain string) (*KeyDocument, *serverkey.Set, error) {
	const op = "federation.Discover"
	noServer := func(why string, err error) error {
		return &Error{Op: op, Kind: fedwire.Code_CODE_NOT_FOUND, Msg: "no Hearth server for " + domain + why, Err: err}
	}
	unavailable := func(err error) error {
		return &Error{Op: op, Kind: fedwire.Code_CODE_UNAVAILABLE, Msg: domain + " is unreachable", Err: err}
	}
	addrs, err := d.Resolver.LookupHost(ctx, domain)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil, noServer("", err)
		}
		return nil, nil, unavailable(err)
	}
	if len(addrs) == 0 {
		return nil, nil, noServer("", errors.New("no addresses"))
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var errs []error
		for _, a := range addrs {
			c, err := d.Dial(ctx, network, net.JoinHostPort(a, "443"))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10,
		TLSClientConfig: &tls.Config{ServerName: domain, RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+domain+PathKeyDocument, nil)
	if err != nil {
		return nil, nil, noServer("", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, errRedirect) {
			return nil, nil, noServer(" (its key document redirects)", err)
		}
		return nil, nil, unavailable(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, nil, noServer("", fmt.Errorf("HTTP %d", resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		return nil, nil, unavailable(fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, d.MaxBytes+1))
	if err != nil {
		return nil, nil, unavailable(err)
	}
	if int64(len(b)) > d.MaxBytes {
		return nil, nil, noServer(" (its key document is too large)", fmt.Errorf("over %d bytes", d.MaxBytes))
	}
	doc, set, err := ParseKeyDocumentAt(b, domain, d.Now())
	if err != nil {
		return nil, nil, noServer(" (its key document is invalid)", err)
	}
	if _, _, err := net.SplitHostPort(doc.Federation); err != nil {
		return nil, nil, noServer(" (its federation address is invalid)", err)
	}
	if !d.TestAddresses {
		if err := CheckFederationAddress(doc.Federation, d.TestNames); err != nil {
			return nil, nil, noServer(" (its federation address is not a public host name)", err)
		}
	}
	return doc, set, nil
}

// retryIn formats a wait for a message: whole seconds, at least 1s.
func retryIn(d time.Duration) string {
	if d < time.Second {
		return "1s"
	}
	return d.Round(time.Second).String()
}
