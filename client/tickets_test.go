//go:build !js

package client

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"hearth/client/store"
	"hearth/homeserver/certs"
)

// captureCache keeps the last ticket a TLS client was given.
type captureCache struct{ cs *tls.ClientSessionState }

func (c *captureCache) Get(string) (*tls.ClientSessionState, bool) { return c.cs, c.cs != nil }
func (c *captureCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.cs = cs
	}
}

// handshake runs a TLS 1.3 handshake over a pipe with cache and reports
// whether it resumed; the client reads once so that the server's ticket
// (sent after the handshake) reaches the cache.
func handshake(t *testing.T, srvConf *tls.Config, cliConf *tls.Config) bool {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		s := tls.Server(a, srvConf)
		if s.Handshake() == nil {
			s.Write([]byte("x"))
		}
	}()
	c := tls.Client(b, cliConf)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

// TestTicketCachePersists: a ticket put in the profile's cache is found
// by a new cache on the same profile (the next process) and resumes the
// TLS session; a ticket older than ticketEarlyMaxAge loses its 0-RTT
// permission; a damaged record is no ticket.
func TestTicketCachePersists(t *testing.T) {
	m, roots, err := certs.Local(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvConf := m.TLSConfig()
	profile := t.TempDir()
	st, err := store.OpenWith(profile, 10*time.Second, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	first := newTicketCache(st, func() time.Time { return now })
	cli := func(cache tls.ClientSessionCache) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, ClientSessionCache: cache}
	}
	if handshake(t, srvConf, cli(first)) {
		t.Fatal("the first handshake resumed")
	}
	first.flush(5 * time.Second)
	next := newTicketCache(st, func() time.Time { return now })
	if _, ok := next.Get("127.0.0.1"); !ok {
		t.Fatal("the ticket did not reach the profile")
	}
	if !handshake(t, srvConf, cli(next)) {
		t.Error("a new cache on the profile did not resume the session")
	}

	// The age rule, on a ticket marked for 0-RTT.
	cs, _ := next.Get("127.0.0.1")
	ticket, state, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	state.EarlyData = true
	cs, err = tls.NewResumptionState(ticket, state)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := encodeTicket(cs, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		age   time.Duration
		early bool
	}{{time.Hour, true}, {ticketEarlyMaxAge + time.Minute, false}, {-time.Hour, false}} {
		got, err := decodeTicket(rec, now.Add(tc.age))
		if err != nil {
			t.Fatal(err)
		}
		if _, s, _ := got.ResumptionState(); s.EarlyData != tc.early {
			t.Errorf("ticket aged %v: 0-RTT %v, want %v", tc.age, s.EarlyData, tc.early)
		}
	}
	for _, bad := range [][]byte{nil, []byte("HT1"), rec[:len(rec)-5], append([]byte("XX1"), rec[3:]...)} {
		if _, err := decodeTicket(bad, now); err == nil {
			t.Errorf("decodeTicket(%q…) accepted a damaged record", bad[:min(len(bad), 8)])
		}
	}
}

// FuzzDecodeTicket: a ticket record read from the profile never panics
// the decoder, and what it accepts encodes again.
func FuzzDecodeTicket(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("HT1\x00\x00\x01\x9a\x00\x00\x00\x00\x03abc"))
	f.Add([]byte("HT1\x00\x00\x01\x9a\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := decodeTicket(b, now)
		if err != nil {
			return
		}
		if _, err := encodeTicket(cs, now); err != nil {
			t.Fatalf("accepted record does not encode again: %v", err)
		}
	})
}
