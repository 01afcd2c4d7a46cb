package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hearth/client/store"
	"hearth/homeserver/certs"
)

// setFedConfig sets key in the "federation" object of f's config.json;
// it takes effect at the next start.
func (f *fedServer) setFedConfig(t *testing.T, key string, value any) {
	t.Helper()
	f.editConfig(t, func(cfg map[string]any) {
		fed, _ := cfg["federation"].(map[string]any)
		if fed == nil {
			fed = map[string]any{}
		}
		fed[key] = value
		cfg["federation"] = fed
	})
}

// TestFederationDeliveryFailedE2E: alice@a.example's message to a group
// with bob@b.example, accepted by her hub a while b is down, cannot reach
// b before a's federation expiry (1 s here) and is reported back: `hearth
// chat recv --json` on alice's device prints a delivery_failed event
// naming the message and b.example. (The message is sent with the client
// library within the 30 s in which a group's roster counts as checked: the
// chat commands re-check a peer's devices on every send, which a peer
// that is down refuses.)
func TestFederationDeliveryFailedE2E(t *testing.T) {
	skipShort(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	a.srv.stop(t, syscall.SIGTERM)
	a.setFedConfig(t, "expiry", "1s")
	a.start(t)
	a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", "alice@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), "login", "bob@b.example", "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")
	bob.must(t, "", "recv", "--timeout", "1s") // publishes bob's KeyPackages

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ac := openClient(t, alice)
	defer ac.Close()
	conv, err := ac.Groups().Create(ctx, "pair", []string{"bob@b.example"})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	first, err := ac.Queue(conv, "first")
	if err == nil {
		err = ac.Flush(ctx, first)
	}
	if err != nil {
		t.Fatalf("first message: %v", err)
	}
	// Flush returns once the hub accepted it; wait until b has it too, so
	// that only the next message meets b down.
	for i := 0; !strings.Contains(bob.must(t, "", "recv", "--json", "--timeout", "2s"), `"text":"first"`); i++ {
		if i == 10 {
			t.Fatal("b.example never delivered the first message")
		}
	}
	b.srv.stop(t, syscall.SIGTERM)
	lost, err := ac.Queue(conv, "never arrives")
	if err == nil {
		err = ac.Flush(ctx, lost)
	}
	if err != nil {
		t.Fatalf("message while b is down: %v", err)
	}
	ac.Close()

	var got []store.Message
	for i := 0; i < 5 && len(got) == 0; i++ {
		for _, line := range strings.Split(strings.TrimSpace(alice.must(t, "", "recv", "--json", "--timeout", "2s")), "\n") {
			if line == "" {
				continue
			}
			var m store.Message
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("recv line %q: %v", line, err)
			}
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("alice recv %+v, want one delivery_failed event", got)
	}
	if e := got[0]; e.Event != "delivery_failed" || e.ID != lost || e.Conversation != conv || e.Text != "b.example" ||
		e.From != "alice@a.example" || e.Seq == 0 {
		t.Fatalf("event %+v, want delivery_failed of %s in %s naming b.example", e, lost, conv)
	}
}
