package homeserver

import (
	"context"
	"sync"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// listVersion fetches user's list both ways (FetchDeviceList and
// FetchDeviceLists) and returns the version, checking both agree.
func listVersion(t *testing.T, c *client, user string) uint64 {
	t.Helper()
	one := c.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user}}}).GetDeviceList()
	many := c.must(fetchLists(user)).GetDeviceLists().GetLists()
	if len(many) != 1 {
		t.Fatalf("FetchDeviceLists(%s): %d lists", user, len(many))
	}
	var vs [2]uint64
	for i, dl := range []*wire.DeviceListResult{one, many[0]} {
		l, err := identity.UnmarshalDeviceList(dl.GetDeviceList().GetList())
		if err != nil {
			t.Fatal(err)
		}
		vs[i] = l.Version
	}
	if vs[0] != vs[1] {
		t.Fatalf("%s: FetchDeviceList gives version %d, FetchDeviceLists %d", user, vs[0], vs[1])
	}
	return vs[0]
}

// bump publishes a's list again with the next version.
func bump(t *testing.T, c *client, a *account) uint64 {
	t.Helper()
	next := *a.list
	next.Version++
	a.list = &next
	c.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{DeviceList: a.sign(t)}}})
	return next.Version
}

// TestDeviceListCacheFollowsWrites: lists are answered from memory once
// read, and a published list is what the next fetch returns, while other
// sessions fetch the same list concurrently; a deleted user's list is gone.
func TestDeviceListCacheFollowsWrites(t *testing.T) {
	h := newHarness(t, Config{})
	alice, aliceAcct := h.firstDevice("alice")
	bob, _ := h.firstDevice("bob")
	user := "alice@" + testDomain
	if v := listVersion(t, bob, user); v != aliceAcct.list.Version {
		t.Fatalf("version %d, want %d", v, aliceAcct.list.Version)
	}
	if !h.s.dir.Cached("alice") {
		t.Fatal("a fetched list is not cached")
	}
	// Readers hammer the list while alice publishes: every fetch after a
	// publish returned sees at least that version.
	readers := make([]*client, 3)
	for i := range readers {
		readers[i], _ = h.firstDevice("reader" + string(rune('a'+i)))
	}
	var done sync.WaitGroup
	stop := make(chan struct{})
	for _, r := range readers {
		done.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					r.must(fetchLists(user))
				}
			}
		})
	}
	for range 30 {
		want := bump(t, alice, aliceAcct)
		if v := listVersion(t, bob, user); v != want {
			close(stop)
			done.Wait()
			t.Fatalf("after publishing version %d, fetch returns %d", want, v)
		}
	}
	close(stop)
	done.Wait()
	if err := h.s.UserDelete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	bob.fails(&wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user}}}, wire.Code_CODE_NOT_FOUND)
	if got := missingCodes(bob.must(fetchLists(user)).GetDeviceLists()); got[user] != wire.Code_CODE_NOT_FOUND {
		t.Fatalf("deleted user's list: missing %v", got)
	}
}
