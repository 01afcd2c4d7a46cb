package homeserver

import (
	"context"
	"crypto/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// fixedPeer routes every domain to one node's address.
type fixedPeer struct{ n *fedNode }

func (f fixedPeer) Peer(_ context.Context, domain string) (federation.Peer, error) {
	return federation.Peer{Domain: f.n.domain, Address: f.n.addr, CAPEM: f.n.caPEM}, nil
}

func (n *fedNode) rows(t *testing.T) map[string]int {
	t.Helper()
	var m map[string]int
	if err := n.db.Read(context.Background(), func(tx *storage.Tx) (err error) { m, err = tx.CountFederationRows(); return err }); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFederationRefusals: transactions with a bad signature, for another
// destination, under an unknown key, outside the clock window, replaying
// a transaction id with other bytes, or from a denied domain are refused
// with their code and logged (origin and code, no payload), and nothing
// from them is stored.
func TestFederationRefusals(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	cl := &federation.Client{Peers: fixedPeer{a}}
	defer cl.Close()
	const secret = "PAYLOAD-THAT-MUST-NOT-BE-LOGGED"
	deliver := func(id string) *fedwire.Envelope {
		return &fedwire.Envelope{Id: id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, ConversationId: "x@b.example",
			Sender: "bob@b.example/DEV", MessageId: "m", MessageKind: uint32(wire.MessageKind_MESSAGE_KIND_APPLICATION),
			Payload: []byte(secret), ConversationSeq: 1, Recipients: []string{alice.addr()}, ServerTimeMs: time.Now().UnixMilli()}
	}
	txn := func(id, dest string, at time.Time, envs ...*fedwire.Envelope) *fedwire.Transaction {
		return &fedwire.Transaction{Origin: "b.example", Destination: dest, TxnId: id, OriginTimeMs: at.UnixMilli(), Envelopes: envs}
	}
	post := func(st *fedwire.SignedTransaction) *fedwire.TransactionResult {
		t.Helper()
		res, err := cl.Send(context.Background(), "a.example", st)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	sign := func(k *serverkey.Key, x *fedwire.Transaction) *fedwire.SignedTransaction {
		st, err := federation.SignTransaction(k, x)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stranger, _ := serverkey.Generate(rand.Reader)
	now := time.Now()
	before := a.rows(t)

	badSig := sign(b.skey, txn("t1", "a.example", now, deliver("e1")))
	badSig.Signature[3] ^= 1
	cases := []struct {
		name string
		st   *fedwire.SignedTransaction
		want fedwire.Code
	}{
		{"bad signature", badSig, fedwire.Code_CODE_BAD_SIGNATURE},
		{"wrong destination", sign(b.skey, txn("t2", "c.example", now, deliver("e2"))), fedwire.Code_CODE_WRONG_DESTINATION},
		{"unknown key", sign(stranger, txn("t3", "a.example", now, deliver("e3"))), fedwire.Code_CODE_BAD_SIGNATURE},
		{"clock skew", sign(b.skey, txn("t4", "a.example", now.Add(-time.Hour), deliver("e4"))), fedwire.Code_CODE_CLOCK_SKEW},
	}
	for _, tc := range cases {
		if res := post(tc.st); res.Code != tc.want {
			t.Fatalf("%s: got %v %s, want %v", tc.name, res.Code, res.Message, tc.want)
		}
		if got := a.rows(t); !reflect.DeepEqual(got, before) {
			t.Fatalf("%s: stored something: %v -> %v", tc.name, before, got)
		}
	}

	// A valid transaction is applied once; its id again with other bytes is a replay.
	good := sign(b.skey, txn("t5", "a.example", now, deliver("e5")))
	if res := post(good); res.Code != fedwire.Code_CODE_OK || res.Results[0].Code != fedwire.Code_CODE_OK {
		t.Fatalf("valid transaction: %v", res)
	}
	applied := a.rows(t)
	if applied["mailbox"] != before["mailbox"]+1 || applied["fed_txn_in"] != before["fed_txn_in"]+1 {
		t.Fatalf("valid transaction not stored: %v -> %v", before, applied)
	}
	if res := post(good); res.Code != fedwire.Code_CODE_OK || res.Results[0].Code != fedwire.Code_CODE_OK {
		t.Fatalf("same transaction again: %v", res)
	}
	other := deliver("e6")
	other.ConversationSeq, other.PrevConversationSeq = 2, 1
	if res := post(sign(b.skey, txn("t5", "a.example", now, other))); res.Code != fedwire.Code_CODE_REPLAY {
		t.Fatalf("replay: %v", res)
	}
	if got := a.rows(t); !reflect.DeepEqual(got, applied) {
		t.Fatalf("replay stored something: %v -> %v", applied, got)
	}
	// A forged envelope inside a valid transaction is refused alone.
	forged := deliver("e7")
	forged.ConversationId = "x@a.example" // b is not its hub
	if res := post(sign(b.skey, txn("t7", "a.example", now, forged))); res.Code != fedwire.Code_CODE_OK || res.Results[0].Code != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("forged envelope: %v", res)
	}

	// Denied: nothing from b is taken any more.
	if err := a.s.FederationPolicy(context.Background(), "deny", "b.example"); err != nil {
		t.Fatal(err)
	}
	applied = a.rows(t)
	other.Id = "e8"
	if res := post(sign(b.skey, txn("t8", "a.example", now, other))); res.Code != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("denied origin: %v", res)
	}
	if got := a.rows(t); !reflect.DeepEqual(got, applied) {
		t.Fatalf("denied transaction stored something: %v -> %v", applied, got)
	}

	logs := a.logs.String()
	for _, want := range []string{"CODE_BAD_SIGNATURE", "CODE_WRONG_DESTINATION", "CODE_CLOCK_SKEW", "CODE_REPLAY", "CODE_FORBIDDEN"} {
		if !strings.Contains(logs, "federation: refused") || !strings.Contains(logs, want) {
			t.Errorf("refusal %s not logged", want)
		}
	}
	if !strings.Contains(logs, "origin=b.example") {
		t.Error("refusals do not name the origin")
	}
	if strings.Contains(logs, secret) {
		t.Error("a payload was logged")
	}
}

// TestFederationRemoteNewDevice: bob@b is in a conversation hubbed at a;
// his new device appears (its list reaches a as DEVICE_LIST), alice finds
// it through the remote key directory, claims its KeyPackage exactly once,
// adds it, and the new device receives the next message.
func TestFederationRemoteNewDevice(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	bobU, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "newdev@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add-bob", 0, bob.addr()))
	collect(t, bob, 1, fedWait)

	// bob's second device, approved by the first: the list goes to a.
	lk, _ := identity.GenerateLinkKey(rand.Reader)
	bob2 := b.connect()
	ok := bob2.login("bob", "password-bob", lk.Public().Bytes())
	bob.must(&wire.ClientFrame{Body: &wire.ClientFrame_ApproveDevice{ApproveDevice: &wire.ApproveDevice{
		DeviceId: ok.DeviceId, DeviceList: bobU.acct.withDevice(t, ok.DeviceId), SealedBundle: []byte("s")}}})
	bob2.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishKeyPackages{PublishKeyPackages: &wire.PublishKeyPackages{
		KeyPackages: [][]byte{[]byte("kp-bob2")}}}})
	bob2.must(syncFrame(0))
	end := time.Now().Add(fedWait)
	for {
		var rl *storage.RemoteList
		a.db.Read(context.Background(), func(tx *storage.Tx) (err error) { rl, err = tx.RemoteList("bob@b.example"); return err })
		if rl != nil && rl.Version == bobU.acct.list.Version {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("a never heard of bob's list version %d: %+v", bobU.acct.list.Version, rl)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// alice sees both devices and claims the new one's package once.
	dl := alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: "bob@b.example"}}}).GetDeviceList()
	l, err := identity.UnmarshalDeviceList(dl.GetDeviceList().GetList())
	if err != nil || len(l.Devices) != 2 {
		t.Fatalf("remote device list: %v %v", l, err)
	}
	claim := &wire.ClientFrame{Body: &wire.ClientFrame_ClaimKeyPackages{ClaimKeyPackages: &wire.ClaimKeyPackages{
		Users: []string{"bob@b.example"}, ExcludeDevices: []string{bob.addr()}}}}
	pk := alice.must(claim).GetClaim().GetPackages()
	if len(pk) != 1 || pk[0].DeviceId != ok.DeviceId || string(pk[0].KeyPackage) != "kp-bob2" {
		t.Fatalf("claim: %v", pk)
	}
	alice.fails(claim, wire.Code_CODE_NO_KEY_PACKAGES) // single use, no last resort published

	alice.must(addCommit(conv, "add-bob2", 1, "bob@b.example/"+ok.DeviceId))
	if w := collect(t, bob2, 1, fedWait)[0]; w.Kind != wire.MessageKind_MESSAGE_KIND_WELCOME || w.ConversationId != conv {
		t.Fatalf("bob2 got %v", w)
	}
	if d := collect(t, bob, 1, fedWait)[0]; d.MessageId != "add-bob2" {
		t.Fatalf("bob got %v", d)
	}
	alice.must(appMsg(conv, "next", 2, "next message"))
	for _, c := range []*client{bob, bob2} {
		if d := collect(t, c, 1, fedWait)[0]; d.MessageId != "next" || d.ConversationSeq != 3 {
			t.Fatalf("%s got %v", c.addr(), d)
		}
	}
	// The new device can send through the hub too.
	if ok := sendRetry(t, bob2, appMsg(conv, "from-bob2", 2, "hello"), fedWait); ok.ConversationSeq != 4 {
		t.Fatalf("bob2 send: %v", ok)
	}
	if d := collect(t, alice, 1, fedWait)[0]; d.MessageId != "from-bob2" {
		t.Fatalf("alice got %v", d)
	}
}

// TestFederationForgedLocalSender: b hubs x@b.example but may not put
// words in the mouth of a's own users: a DELIVER (or a delivery-failed
// notice) naming alice's device as sender, for a message a never
// submitted, is refused and creates no conversation copy; the same from
// b's own user is applied. A real message alice sends through b's hub
// comes back and is applied (a submitted it).
func TestFederationForgedLocalSender(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	cl := &federation.Client{Peers: fixedPeer{a}}
	defer cl.Close()
	now := time.Now()
	deliver := func(id, conv, sender string) *fedwire.Envelope {
		return &fedwire.Envelope{Id: id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, ConversationId: conv,
			Sender: sender, MessageId: "m-" + id, MessageKind: uint32(wire.MessageKind_MESSAGE_KIND_APPLICATION),
			Payload: []byte("p"), ConversationSeq: 1, Recipients: []string{alice.addr()}, ServerTimeMs: now.UnixMilli()}
	}
	post := func(id string, env *fedwire.Envelope) *fedwire.EnvelopeResult {
		t.Helper()
		st, err := federation.SignTransaction(b.skey, &fedwire.Transaction{Origin: "b.example", Destination: "a.example", TxnId: id,
			OriginTimeMs: now.UnixMilli(), Envelopes: []*fedwire.Envelope{env}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(context.Background(), "a.example", st)
		if err != nil || res.Code != fedwire.Code_CODE_OK || len(res.Results) != 1 {
			t.Fatalf("%s: %v %v", id, res, err)
		}
		return res.Results[0]
	}
	convExists := func(id string) bool {
		err := a.db.Read(context.Background(), func(tx *storage.Tx) error { _, err := tx.Conversation(id); return err })
		return err == nil
	}
	before := a.rows(t)
	if r := post("t1", deliver("e1", "forged@b.example", alice.addr())); r.Code != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("DELIVER under alice's name: %v %s", r.Code, r.Message)
	}
	notice := deliver("e2", "forged@b.example", alice.addr())
	notice.FailedServer, notice.Recipients = "c.example", []string{alice.addr()}
	if r := post("t2", notice); r.Code != fedwire.Code_CODE_FORBIDDEN {
		t.Fatalf("failed notice for a message alice never sent: %v %s", r.Code, r.Message)
	}
	if convExists("forged@b.example") {
		t.Fatal("a conversation copy was created under alice's name")
	}
	after := a.rows(t)
	if after["mailbox"] != before["mailbox"] {
		t.Fatalf("a forged entry reached a mailbox: %v -> %v", before, after)
	}
	if r := post("t3", deliver("e3", "real@b.example", "bob@b.example/DEV")); r.Code != fedwire.Code_CODE_OK {
		t.Fatalf("DELIVER from b's own user: %v %s", r.Code, r.Message)
	}
	if r := post("t4", deliver("e4", "bad@b.example", "not a device")); r.Code != fedwire.Code_CODE_BAD_REQUEST {
		t.Fatalf("DELIVER with a malformed sender: %v %s", r.Code, r.Message)
	}
}
