package homeserver

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func fetchLists(users ...string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceLists{FetchDeviceLists: &wire.FetchDeviceLists{Users: users}}}
}

// missingCodes maps each missing user to its code.
func missingCodes(r *wire.DeviceListsResult) map[string]wire.Code {
	out := map[string]wire.Code{}
	for _, m := range r.GetMissing() {
		out[m.GetUser()] = m.GetCode()
	}
	return out
}

// TestFetchDeviceLists: local users' signed lists in one answer, each
// verifiable with its identity key; unknown users and bad addresses are
// reported per user; a user named twice is answered once; 0 or more than
// 256 users are refused.
func TestFetchDeviceLists(t *testing.T) {
	h := newHarness(t, Config{})
	alice, aliceAcct := h.firstDevice("alice")
	_, bobAcct := h.firstDevice("bob")
	h.addUser("nolist") // an account that never published an identity
	r := alice.must(fetchLists("alice", "bob@"+testDomain, "ghost", "nolist", "not an address!", "alice")).GetDeviceLists()
	if len(r.GetLists()) != 2 {
		t.Fatalf("got %d lists, want 2: %v", len(r.GetLists()), r)
	}
	accts := map[string]*account{"alice@" + testDomain: aliceAcct, "bob@" + testDomain: bobAcct}
	for _, dl := range r.GetLists() {
		a := accts[dl.GetUser()]
		if a == nil || !bytes.Equal(dl.GetIdentityKey(), a.signer.Public().Bytes()) {
			t.Fatalf("list for %q with identity key %x", dl.GetUser(), dl.GetIdentityKey())
		}
		pub, _ := identity.ParsePublicKey(dl.GetIdentityKey())
		l, err := identity.VerifyDeviceList(pub, dl.GetDeviceList().GetList(), dl.GetDeviceList().GetSignature())
		if err != nil || l.User.String() != dl.GetUser() || len(l.Devices) != 1 {
			t.Fatalf("list for %s: %v %v", dl.GetUser(), l, err)
		}
	}
	want := map[string]wire.Code{"ghost": wire.Code_CODE_NOT_FOUND, "nolist": wire.Code_CODE_NOT_FOUND, "not an address!": wire.Code_CODE_BAD_REQUEST}
	if got := missingCodes(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("missing %v, want %v", got, want)
	}
	alice.fails(fetchLists(), wire.Code_CODE_BAD_REQUEST)
	many := make([]string, maxFetchLists+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	alice.fails(fetchLists(many...), wire.Code_CODE_BAD_REQUEST)
	if r := alice.must(fetchLists(many[:maxFetchLists]...)).GetDeviceLists(); len(r.GetMissing()) != maxFetchLists {
		t.Fatalf("%d unknown users: %d reported missing", maxFetchLists, len(r.GetMissing()))
	}
}

// TestFetchDeviceListsRemote: remote users' lists come through
// federation; an unknown remote user is NOT_FOUND; the users of a server
// that does not answer are UNAVAILABLE, and local users are still answered.
func TestFetchDeviceListsRemote(t *testing.T) {
	a, b, c := newFedNode(t, "a.example"), newFedNode(t, "b.example"), newFedNode(t, "c.example")
	pinAll(t, a, b, c)
	_, alice := a.addUser("alice")
	bobU, _ := b.addUser("bob")
	b.addUser("bea")
	c.addUser("carol")
	c.stop()
	r := alice.must(fetchLists("bob@b.example", "bea@b.example", "ghost@b.example", "carol@c.example", "cleo@c.example", "alice")).GetDeviceLists()
	var got []string
	for _, dl := range r.GetLists() {
		got = append(got, dl.GetUser())
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[alice@a.example bea@b.example bob@b.example]" {
		t.Fatalf("lists for %v", got)
	}
	for _, dl := range r.GetLists() {
		if dl.GetUser() == "bob@b.example" && !bytes.Equal(dl.GetIdentityKey(), bobU.acct.signer.Public().Bytes()) {
			t.Fatal("bob's list with another identity key")
		}
	}
	want := map[string]wire.Code{"ghost@b.example": wire.Code_CODE_NOT_FOUND,
		"carol@c.example": wire.Code_CODE_UNAVAILABLE, "cleo@c.example": wire.Code_CODE_UNAVAILABLE}
	if got := missingCodes(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("missing %v, want %v", got, want)
	}
}

// TestWelcomeGroupInfoDelivered: the Welcome delivered to an added device
// carries the GroupInfo its commit brought, locally and on a follower
// server; the members' commit delivery does not.
func TestWelcomeGroupInfoDelivered(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, al2 := a.addUser("al")
	_, bob := b.addUser("bob")
	for _, cl := range []*client{alice, al2, bob} {
		cl.must(syncFrame(0))
	}
	createConv(alice, "g@a.example")
	alice.must(addCommit("g@a.example", "add", 0, al2.addr(), bob.addr()))
	for _, cl := range []*client{al2, bob} {
		w := collect(t, cl, 1, fedWait)[0]
		if w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || string(w.GroupInfo) != "group-info-epoch-1" {
			t.Fatalf("%s: welcome %v", cl.user, w)
		}
	}
	alice.must(addCommit("g@a.example", "c2", 1))
	for _, cl := range []*client{al2, bob} {
		d := collect(t, cl, 1, fedWait)[0]
		if d.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT || d.GroupInfo != nil {
			t.Fatalf("%s: commit delivery %v", cl.user, d)
		}
	}
}

// TestCommitSizeLimit: a commit may be as large as MaxCommitBytes, an
// application message only MaxMessageBytes; over either: CODE_TOO_LARGE,
// nothing stored.
func TestCommitSizeLimit(t *testing.T) {
	h := newHarness(t, Config{MaxMessageBytes: 16 << 10, MaxCommitBytes: 64 << 10})
	alice, _ := h.firstDevice("alice")
	createConv(alice, "big@"+testDomain)
	f := commit("big@"+testDomain, "c1", 0, nil, nil)
	f.GetSend().GroupInfo = make([]byte, 40<<10)
	alice.must(f)
	over := commit("big@"+testDomain, "c2", 1, nil, nil)
	over.GetSend().GroupInfo = make([]byte, 64<<10)
	alice.fails(over, wire.Code_CODE_TOO_LARGE)
	alice.fails(appMsg("big@"+testDomain, "m1", 1, string(make([]byte, 20<<10))), wire.Code_CODE_TOO_LARGE)
	if ok := alice.must(appMsg("big@"+testDomain, "m2", 1, "small")).GetSendOk(); ok.ConversationSeq != 2 {
		t.Fatalf("after the refusals the next message got seq %d, want 2", ok.ConversationSeq)
	}
}
