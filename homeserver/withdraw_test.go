package homeserver

import (
	"crypto/rand"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// TestPendingDeviceWithdraws: a pending device may revoke only itself,
// which deletes it (the user's device list no longer shows it and its
// link code approves nothing); it cannot revoke another device, and an
// active device's revoke of a pending one still keeps it as revoked.
func TestPendingDeviceWithdraws(t *testing.T) {
	h := newHarness(t, Config{})
	a1, _ := h.firstDevice("alice")
	pending := func() (*client, *wire.LoginOK) {
		lk, err := identity.GenerateLinkKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c := h.connect()
		return c, c.login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	}
	revoke := func(id string) *wire.ClientFrame {
		return &wire.ClientFrame{Body: &wire.ClientFrame_RevokeDevice{RevokeDevice: &wire.RevokeDevice{DeviceId: id}}}
	}
	listed := func() map[string]wire.DeviceStatus {
		out := map[string]wire.DeviceStatus{}
		for _, d := range a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}}).GetDevices().GetDevices() {
			out[d.GetDeviceId()] = d.GetStatus()
		}
		return out
	}
	var first string
	for id := range listed() {
		first = id
	}
	p2, ok2 := pending()
	_, ok3 := pending()
	p2.fails(revoke(first), wire.Code_CODE_PENDING_APPROVAL)
	p2.fails(revoke(ok3.DeviceId), wire.Code_CODE_PENDING_APPROVAL)
	if got := listed(); len(got) != 3 || got[ok2.DeviceId] != wire.DeviceStatus_DEVICE_STATUS_PENDING {
		t.Fatalf("devices before: %v", got)
	}
	p2.must(revoke(ok2.DeviceId))
	p2.closed(wire.Code_CODE_DEVICE_REVOKED)
	if got := listed(); len(got) != 2 {
		t.Fatalf("devices after the withdrawal: %v, want %s gone", got, ok2.DeviceId)
	}
	a1.fails(&wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: ok2.LinkCode}}}, wire.Code_CODE_NOT_FOUND)
	// An active device revoking a pending one keeps the record, revoked.
	a1.must(revoke(ok3.DeviceId))
	if got := listed(); got[ok3.DeviceId] != wire.DeviceStatus_DEVICE_STATUS_REVOKED {
		t.Fatalf("devices after revoking %s: %v", ok3.DeviceId, got)
	}
}
