package client

import (
	"fmt"
	"testing"

	"hearth/client/store"
	"hearth/keys/identity"
)

// TestFetchDeviceListsBatch: many users' lists in one call (more than one
// request's worth), verified and pinned as Fetch pins them;
// users without a list are left out without an error.
func TestFetchDeviceListsBatch(t *testing.T) {
	ts := newTestServer(t, "a.example", homeserverConfig())
	alice := ts.client(t)
	login(t, ts, alice, ts.addUser(t, "alice", "password-alice"), "password-alice")
	for _, n := range []string{"bob", "carol"} {
		login(t, ts, ts.client(t), ts.addUser(t, n, "password-"+n), "password-"+n)
	}
	var users []identity.UserAddress
	for _, n := range []string{"bob", "carol"} {
		u, _ := identity.ParseUser(n + "@a.example")
		users = append(users, u)
	}
	for i := range 300 { // unknown users: two requests, reported missing by the server
		u, _ := identity.ParseUser(fmt.Sprintf("ghost%d@a.example", i))
		users = append(users, u)
	}
	got, err := alice.dir.FetchMany(testCtx(t), nil, users)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d lists, want bob's and carol's", len(got))
	}
	for _, u := range users[:2] {
		l := got[u]
		if l == nil || l.User != u || len(l.Devices) != 1 {
			t.Fatalf("%v: %+v", u, l)
		}
		one, err := alice.dir.Fetch(testCtx(t), nil, u)
		if err != nil || one.Version != l.Version || one.Devices[0].DeviceID != l.Devices[0].DeviceID {
			t.Fatalf("%v: batch gave version %d, one by one %+v %v", u, l.Version, one, err)
		}
	}
	err = alice.st.View(func(tx *store.Tx) error {
		for _, u := range users[:2] {
			if tx.Meta("pin/"+u.String()) == nil {
				return fmt.Errorf("%v not pinned", u)
			}
		}
		if tx.Meta("pin/"+users[2].String()) != nil {
			return fmt.Errorf("%v pinned without a list", users[2])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Fetched again: the pinned lists are kept (same version).
	again, err := alice.dir.FetchMany(testCtx(t), nil, users[:2])
	if err != nil || len(again) != 2 || again[users[0]].Version != got[users[0]].Version {
		t.Fatalf("again: %v %v", again, err)
	}
}
