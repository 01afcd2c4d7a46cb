package client_test

import (
	"testing"
	"time"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/session"
)

// TestWarmSendOneRoundTrip: on an open session, a send to a conversation
// whose roster was checked within its freshness window costs one round
// trip (the Send and its acceptance), counted by the session's meter over
// real WebTransport.
func TestWarmSendOneRoundTrip(t *testing.T) {
	ts := client.NewTestServer(t, "a.example")
	const pw = "correct horse battery"
	A, B := ts.AddUser(t, "alice", pw), ts.AddUser(t, "bob", pw)
	b1 := newDev(t, ts, B)
	m := &session.Meter{}
	c, err := client.Open(client.Config{Profile: t.TempDir(), Dial: ts.DialQUIC(t, false), Groups: mlsgroup.New(),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Meter: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a1 := &dev{t: t, c: c, user: A}
	a1.login(pw)
	b1.login(pw)
	a1.send(B, "cold") // creates the conversation and checks its roster
	before := m.Stats()
	a1.send(B, "warm")
	after := m.Stats()
	b1.recv(A+":cold", A+":warm")

	if len(after.Connections) != len(before.Connections) {
		t.Fatalf("the warm send opened a connection: %d → %d", len(before.Connections), len(after.Connections))
	}
	last := len(after.Connections) - 1
	cb, ca := before.Connections[last], after.Connections[last]
	if ca.Protocol != "webtransport" {
		t.Errorf("session over %q, want webtransport", ca.Protocol)
	}
	if d := ca.RoundTrips - cb.RoundTrips; d != 1 {
		t.Errorf("warm send cost %d round trips (%d → %d, requests %d → %d), want 1", d, cb.RoundTrips, ca.RoundTrips, cb.Requests, ca.Requests)
	}
	if s := after.Ops["client.Send"]; s.Count != before.Ops["client.Send"].Count+1 || s.MaxRoundTrip != ca.RoundTrips {
		t.Errorf("Send %+v: want one more, answered at round trip %d", s, ca.RoundTrips)
	}
}
