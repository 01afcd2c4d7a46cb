package homeserver

import (
	"crypto/rand"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func listConvs(c *client) []string {
	var ids []string
	for _, ci := range c.must(&wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}}).GetConversations().GetConversations() {
		ids = append(ids, ci.ConversationId)
	}
	return ids
}

// TestListConversationsAllDevices: ListConversations lists the
// conversations that hold any device of the caller's user, so a device
// linked later finds the ones its user's first device is in; another
// user's conversations are not listed.
func TestListConversationsAllDevices(t *testing.T) {
	h := newHarness(t, Config{})
	a1, acct := h.firstDevice("alice")
	b1, _ := h.firstDevice("bob")
	c1, _ := h.firstDevice("carol")
	createConv(a1, "ab@"+testDomain)
	a1.must(commit("ab@"+testDomain, "add-bob", 0, []string{b1.addr()}, nil))
	createConv(b1, "bc@"+testDomain)
	b1.must(commit("bc@"+testDomain, "add-carol", 0, []string{c1.addr()}, nil))

	lk, err := identity.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a2 := h.connect()
	ok := a2.login("alice@"+testDomain, "password-alice", lk.Public().Bytes())
	a1.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: acct.withDevice(t, ok.DeviceId), SealedBundle: []byte("sealed")}}})
	a2.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchApproval{FetchApproval: &wire.FetchApproval{}}})

	if got := listConvs(a2); len(got) != 1 || got[0] != "ab@"+testDomain {
		t.Fatalf("alice's new device lists %v, want [ab@%s]", got, testDomain)
	}
	if got := listConvs(a1); len(got) != 1 || got[0] != "ab@"+testDomain {
		t.Fatalf("alice's first device lists %v", got)
	}
	if got := listConvs(b1); len(got) != 2 {
		t.Fatalf("bob lists %v, want both conversations", got)
	}
	if got := listConvs(c1); len(got) != 1 || got[0] != "bc@"+testDomain {
		t.Fatalf("carol lists %v", got)
	}
}
