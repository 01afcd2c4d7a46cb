package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAdminRevokeLeavesSignedList: `hearth admin device revoke` cannot
// re-sign the user's device list; the user's next command on another
// device takes the revoked device off the list (and out of the
// conversations), and messages still flow.
func TestAdminRevokeLeavesSignedList(t *testing.T) {
	skipShort(t)
	n, a1, b1 := newMessagingNet(t)
	a2 := newProfile(t, "alice")
	linkDevice(t, n, a2, a1)
	a1.must(t, "", "send", bobAddr, "before")
	expectRecv(t, b1, aliceAddr+":before")
	victim := storedAccount(t, a2).DeviceID
	listed := func() bool {
		t.Helper()
		for _, line := range strings.Split(strings.TrimSpace(a1.must(t, "", "device", "list", "--json")), "\n") {
			var d struct {
				Device string `json:"device"`
				Listed bool   `json:"listed"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("device list line %q: %v", line, err)
			}
			if d.Device == victim {
				return d.Listed
			}
		}
		t.Fatalf("device %s not in alice's device list", victim)
		return false
	}
	if !listed() {
		t.Fatal("the linked device is not on the signed list")
	}
	mustHearth(t, "", "admin", "--dir", n.dir, "device", "revoke", "alice", victim)
	// The first command after the revoke connects and learns of it (and
	// fixes the list before it exits); the one after sees the new list.
	a1.must(t, "", "device", "list")
	if listed() {
		t.Fatal("the device an admin revoked is still on alice's signed list after her other device connected")
	}
	b1.must(t, "", "send", aliceAddr, "after")
	expectRecv(t, a1, bobAddr+":after")
}
