package homeserver

import (
	"crypto/rand"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
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

// TestAbandonedPendingDeviceSwept: a pending device whose login gave up
// without withdrawing (its refresh token expired and was swept) is
// deleted by retention, with its key packages; a pending device that
// still holds a live refresh token, however old, is kept.
func TestAbandonedPendingDeviceSwept(t *testing.T) {
	h := newHarness(t, Config{RefreshTokenTTL: 48 * time.Hour})
	a1, _ := h.firstDevice("alice")
	pending := func() *wire.LoginOK {
		lk, err := identity.GenerateLinkKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return h.connect().login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	}
	listed := func() map[string]wire.DeviceStatus {
		out := map[string]wire.DeviceStatus{}
		for _, d := range a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListDevices{ListDevices: &wire.ListDevices{}}}).GetDevices().GetDevices() {
			out[d.GetDeviceId()] = d.GetStatus()
		}
		return out
	}
	gone := pending()
	// As a client does before it shows its link code (storage directly:
	// what matters here is that they go with the device).
	if err := h.db.Write(t.Context(), func(tx *storage.Tx) error {
		return tx.AddKeyPackages(gone.DeviceId, [][]byte{[]byte("kp1"), []byte("kp2")}, []byte("last"), h.clock.Now().UnixMilli())
	}); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(30 * time.Hour)
	kept := pending() // its refresh token outlives the first one's
	if _, err := h.s.RunRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := listed(); len(got) != 3 {
		t.Fatalf("devices after 30 h: %v, want both pending devices kept (their tokens are live)", got)
	}
	h.clock.Add(20 * time.Hour) // the first token expired, the second has 28 h left
	if _, err := h.s.RunRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := listed()
	if _, ok := got[gone.DeviceId]; ok || got[kept.DeviceId] != wire.DeviceStatus_DEVICE_STATUS_PENDING || len(got) != 2 {
		t.Fatalf("devices after 50 h: %v, want %s swept and %s kept pending", got, gone.DeviceId, kept.DeviceId)
	}
	a1.fails(&wire.ClientFrame{Body: &wire.ClientFrame_PendingDevice{PendingDevice: &wire.PendingDevice{LinkCode: gone.LinkCode}}}, wire.Code_CODE_NOT_FOUND)
	var kps int
	if err := h.db.Read(t.Context(), func(tx *storage.Tx) (err error) {
		kps, err = tx.CountKeyPackages(gone.DeviceId)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if kps != 0 {
		t.Fatalf("%d key packages of the swept device left", kps)
	}
}
