package homeserver

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// TestAdminRevokeNamesListedDevice: a device an admin revokes stays on the
// user's signed list, so the server names it to the user's devices: a
// DevicesChanged push to the sessions online, and HelloOK.revoked_listed
// at every connection until a list without it is published.
func TestAdminRevokeNamesListedDevice(t *testing.T) {
	h := newHarness(t, Config{})
	a1, acct := h.firstDevice("alice")
	lk, err := identity.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a2 := h.connect()
	ok := a2.login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: acct.withDevice(t, ok.DeviceId), SealedBundle: []byte("sealed")}}})
	if got := h.connect().hello(a1.access).GetHelloOk().GetRevokedListed(); len(got) != 0 {
		t.Fatalf("nothing revoked, HelloOK names %v", got)
	}

	if err := h.s.DeviceRevoke(context.Background(), "alice", ok.DeviceId); err != nil {
		t.Fatal(err)
	}
	var pushed []string
	for pushed == nil {
		if dc := a1.push().GetDevicesChanged(); dc != nil {
			pushed = dc.GetRevokedListed()
		}
	}
	if !slices.Equal(pushed, []string{ok.DeviceId}) {
		t.Fatalf("DevicesChanged names %v, want [%s]", pushed, ok.DeviceId)
	}
	if got := h.connect().hello(a1.access).GetHelloOk().GetRevokedListed(); !slices.Equal(got, []string{ok.DeviceId}) {
		t.Fatalf("HelloOK after the revoke names %v, want [%s]", got, ok.DeviceId)
	}
	// Alice's device publishes the list without it: no longer named.
	a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishDeviceList{PublishDeviceList: &wire.PublishDeviceList{
		DeviceList: acct.withoutDevice(t, ok.DeviceId)}}})
	if got := h.connect().hello(a1.access).GetHelloOk().GetRevokedListed(); len(got) != 0 {
		t.Fatalf("after the new list HelloOK still names %v", got)
	}
}
