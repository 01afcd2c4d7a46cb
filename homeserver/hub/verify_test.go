package hub

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/keys/mls/suite"
	"hearth/storage"
)

// vDevice is one device of the verification tests: its MLS signer and,
// once it is in the group, its group state.
type vDevice struct {
	addr   identity.DeviceAddress
	signer *suite.Signer
	g      *mls.Group
}

func (d *vDevice) id() string { return d.addr.String() }

// vWorld is a hub of a.example with its database: local users ann (A1,
// A2) and bob (B1), remote carl@b.example (C1) whose list the hub holds,
// and mallory@c.example (M1), a third server's user who is in no group.
type vWorld struct {
	t     testing.TB
	s     *suite.Suite
	db    *storage.DB
	h     *Hub
	devs  map[string]*vDevice
	conv  string
	seq   int
	cfg   mls.Config
	extra []*vDevice // devices on no list (forgeries)
}

const vDomain = "a.example"

func newVWorld(t testing.TB) *vWorld {
	t.Helper()
	s, _ := suite.Lookup(1)
	db, err := storage.Open(filepath.Join(t.TempDir(), "h.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &vWorld{t: t, s: s, db: db, devs: map[string]*vDevice{}, conv: "g1@" + vDomain,
		cfg: mls.Config{Validator: mls.AcceptAll{}},
		h:   New(Config{Domain: vDomain, EpochWindow: 2, MaxMembers: 1024, MaxMessageBytes: 1 << 20, MaxCommitBytes: 8 << 20, Federated: true})}
	users := []struct {
		user    identity.UserAddress
		devices []string
	}{
		{identity.UserAddress{Local: "ann", Domain: vDomain}, []string{"A1", "A2"}},
		{identity.UserAddress{Local: "bob", Domain: vDomain}, []string{"B1"}},
		{identity.UserAddress{Local: "carl", Domain: "b.example"}, []string{"C1"}},
		{identity.UserAddress{Local: "mallory", Domain: "c.example"}, []string{"M1"}},
	}
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		for _, u := range users {
			rk, err := identity.NewRecoveryKey(rand.Reader)
			if err != nil {
				return err
			}
			l := &identity.DeviceList{User: u.user, Version: 1, IssuedMs: 1}
			for _, id := range u.devices {
				sg, err := s.GenerateSignatureKey(rand.Reader)
				if err != nil {
					return err
				}
				d := &vDevice{addr: identity.DeviceAddress{User: u.user, Device: id}, signer: sg}
				w.devs[d.id()] = d
				l.Devices = append(l.Devices, identity.Device{DeviceID: id, SignatureKey: sg.Public(), Name: id})
			}
			list, sig, err := l.Sign(rk.Signer())
			if err != nil {
				return err
			}
			pub := rk.Signer().Public().Bytes()
			if u.user.Domain != vDomain {
				if err := tx.PutRemoteList(&storage.RemoteList{User: u.user.String(), Version: 1, IdentityKey: pub, List: list, Signature: sig}); err != nil {
					return err
				}
				continue
			}
			su := &storage.User{Name: u.user.Local, PassHash: "x"}
			if err := tx.InsertUser(su); err != nil {
				return err
			}
			if err := tx.InsertIdentityKey(su.ID, pub, 1); err != nil {
				return err
			}
			if err := tx.PutDeviceList(su.ID, &storage.SignedList{Version: 1, List: list, Signature: sig}); err != nil {
				return err
			}
			for _, id := range u.devices {
				if err := tx.InsertDevice(&storage.Device{ID: id, UserID: su.ID, Name: id, Status: storage.DeviceActive,
					SignatureKey: w.devs[u.user.String()+"/"+id].signer.Public()}, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *vWorld) dev(id string) *vDevice {
	if d, ok := w.devs[id]; ok {
		return d
	}
	w.t.Fatalf("no device %s", id)
	return nil
}

// create makes the group at A1 and registers it with its GroupInfo.
func (w *vWorld) create() {
	w.t.Helper()
	a1 := w.dev("ann@" + vDomain + "/A1")
	var err error
	a1.g, err = mls.NewGroup(w.cfg, w.s, []byte(w.conv), a1.signer, mls.BasicCredential(a1.id()), mls.GroupOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	gi, err := a1.g.GroupInfo()
	if err != nil {
		w.t.Fatal(err)
	}
	err = w.db.Write(context.Background(), func(tx *storage.Tx) error {
		_, err := w.h.Create("test", tx, &wire.CreateConversation{ConversationId: w.conv,
			Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP, GroupInfo: gi},
			storage.Member{Address: a1.id(), DeviceID: "A1"}, nil, 1)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// snapshot is what a refused Send must leave as it was.
type snapshot struct {
	epoch   uint64
	lastSeq uint64
	state   []byte
	members []string
	info    []byte
}

func (w *vWorld) snap() snapshot {
	w.t.Helper()
	var s snapshot
	err := w.db.Read(context.Background(), func(tx *storage.Tx) (err error) { s, err = w.snapTx(tx); return err })
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *vWorld) snapTx(tx *storage.Tx) (snapshot, error) {
	var s snapshot
	c, err := tx.Conversation(w.conv)
	if err != nil {
		return s, err
	}
	s.epoch, s.lastSeq, s.info = c.Epoch, c.LastSeq, c.GroupInfo
	if _, s.state, err = tx.PublicState(w.conv); err != nil {
		return s, err
	}
	ms, err := tx.Members(w.conv)
	for _, m := range ms {
		s.members = append(s.members, m.Address)
	}
	slices.Sort(s.members)
	return s, err
}

func (a snapshot) equal(b snapshot) bool {
	return a.epoch == b.epoch && a.lastSeq == b.lastSeq && bytes.Equal(a.state, b.state) &&
		slices.Equal(a.members, b.members) && bytes.Equal(a.info, b.info)
}

// send runs one Send from device `from` through the hub.
func (w *vWorld) send(from string, m *wire.Send) (*Result, error) {
	w.t.Helper()
	w.seq++
	if m.MessageId == "" {
		m.MessageId = fmt.Sprint("m", w.seq)
	}
	if m.ConversationId == "" {
		m.ConversationId = w.conv
	}
	da, err := identity.ParseDevice(from)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.h.ValidateSend("test", m); err != nil {
		return nil, err
	}
	var res *Result
	err = w.db.Write(context.Background(), func(tx *storage.Tx) (err error) {
		res, err = w.h.Accept("test", tx, &Input{Send: m, Sender: da, NowMs: 1})
		return err
	})
	return res, err
}

// refused sends m from `from` and wants code, with nothing changed.
func (w *vWorld) refused(what, from string, m *wire.Send, code wire.Code) {
	w.t.Helper()
	before := w.snap()
	_, err := w.send(from, m)
	if !wire.Is(err, code) {
		w.t.Fatalf("%s: %v, want %v", what, err, code)
	}
	if after := w.snap(); !after.equal(before) {
		w.t.Fatalf("%s: refused, but the conversation changed: %+v -> %+v", what, before.members, after.members)
	}
}

func (w *vWorld) keyPackage(id string) (*vDevice, *mls.KeyPackage, *mls.KeyPackagePrivate) {
	w.t.Helper()
	d := w.devs[id]
	if d == nil { // a device on no list
		a, err := identity.ParseDevice(id)
		if err != nil {
			w.t.Fatal(err)
		}
		sg, _ := w.s.GenerateSignatureKey(rand.Reader)
		d = &vDevice{addr: a, signer: sg}
		w.extra = append(w.extra, d)
	}
	kp, priv, err := mls.NewKeyPackage(w.s, rand.Reader, d.signer, mls.BasicCredential(id), mls.KeyPackageOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return d, kp, priv
}

func commitSend(epoch uint64, out *mls.CommitOutput, add, remove []string) *wire.Send {
	return &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: epoch, Payload: out.Commit,
		Welcome: out.Welcome, GroupInfo: out.GroupInfo, AddDevices: add, RemoveDevices: remove}
}

// TestHubVerifiesCommits is issue 17 case 5 at the hub: every commit is
// verified against the conversation's public MLS state, the roster
// change is the one derived from the commit, and every refusal leaves
// the conversation (epoch, log, roster, public state, GroupInfo) as it
// was.
func TestHubVerifiesCommits(t *testing.T) {
	w := newVWorld(t)
	w.create()
	a1, a2, b1 := w.dev("ann@a.example/A1"), w.dev("ann@a.example/A2"), w.dev("bob@a.example/B1")
	c1, m1 := w.dev("carl@b.example/C1"), w.dev("mallory@c.example/M1")

	// The case: a commit that is not MLS at all, naming a device
	// of a third server.
	w.refused("non-MLS commit adding a third server's device", a1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT,
		Payload: []byte("not mls"), AddDevices: []string{m1.id()}, Welcome: []byte("w"), GroupInfo: []byte("gi")}, wire.Code_CODE_BAD_REQUEST)

	// A forged add of the third server's device: mallory signs a commit
	// for this group id and epoch with her own key.
	mg, err := mls.NewGroup(w.cfg, w.s, []byte(w.conv), m1.signer, mls.BasicCredential(m1.id()), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, kpM, _ := w.keyPackage(m1.id())
	_ = kpM
	_, kpC, _ := w.keyPackage(c1.id())
	forged, err := mg.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpC}})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("commit signed by a non-member, sent as the creator", a1.id(), commitSend(0, forged, []string{c1.id()}, nil), wire.Code_CODE_BAD_REQUEST)
	w.refused("commit by a third server's device", m1.id(), commitSend(0, forged, []string{c1.id()}, nil), wire.Code_CODE_NOT_MEMBER)

	// A real commit adding a device that is not on its user's list.
	_, kpX, _ := w.keyPackage("bob@a.example/B9")
	out, err := a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpX}})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("add of a device not on its user's list", a1.id(), commitSend(0, out, []string{"bob@a.example/B9"}, nil), wire.Code_CODE_BAD_REQUEST)
	a1.g.DiscardPendingCommit()

	// The real first commit: ann adds bob and carl (remote).
	_, kpB, privB := w.keyPackage(b1.id())
	_, kpC, privC := w.keyPackage(c1.id())
	out, err = a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpB, kpC}})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("declared adds not the commit's", a1.id(), commitSend(0, out, []string{b1.id(), c1.id(), m1.id()}, nil), wire.Code_CODE_BAD_REQUEST)
	w.refused("declared adds missing one", a1.id(), commitSend(0, out, []string{b1.id()}, nil), wire.Code_CODE_BAD_REQUEST)
	w.refused("declared removes not the commit's", a1.id(), commitSend(0, out, []string{b1.id(), c1.id()}, []string{a2.id()}), wire.Code_CODE_BAD_REQUEST)
	w.refused("a member's commit sent by another device", a2.id(), commitSend(0, out, nil, nil), wire.Code_CODE_NOT_MEMBER)
	bad := commitSend(0, out, nil, nil)
	bad.GroupInfo = append([]byte(nil), out.GroupInfo...)
	bad.GroupInfo[len(bad.GroupInfo)-1] ^= 1
	w.refused("a GroupInfo that does not describe the new epoch", a1.id(), bad, wire.Code_CODE_BAD_REQUEST)
	lying := commitSend(1, out, nil, nil)
	w.refused("wire epoch ahead of the conversation", a1.id(), lying, wire.Code_CODE_STALE_EPOCH)

	// Accepted with the fields (old clients) and without them.
	if _, err := w.send(a1.id(), commitSend(0, out, []string{c1.id(), b1.id()}, nil)); err != nil {
		t.Fatalf("real commit refused: %v", err)
	}
	if _, err := a1.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if b1.g, err = mls.JoinFromWelcome(w.cfg, out.Welcome, kpB, privB, mls.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if c1.g, err = mls.JoinFromWelcome(w.cfg, out.Welcome, kpC, privC, mls.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	s := w.snap()
	if s.epoch != 1 || !slices.Equal(s.members, []string{a1.id(), b1.id(), c1.id()}) {
		t.Fatalf("after the first commit: epoch %d members %v", s.epoch, s.members)
	}
	members := []*vDevice{a1, b1, c1}
	// processAll feeds an accepted commit to every member but its committer.
	processAll := func(commit []byte, except *vDevice) {
		t.Helper()
		for _, d := range members {
			if d != except && d.g != nil {
				if _, err := d.g.Process(commit); err != nil {
					t.Fatalf("%s processing: %v", d.id(), err)
				}
			}
		}
	}

	// A stale commit: bob commits at epoch 1 after ann's epoch-1 commit
	// was accepted: the wire epoch says so, and so does a lie.
	outA, err := a1.g.Commit(mls.CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	outB, err := b1.g.Commit(mls.CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(a1.id(), commitSend(1, outA, nil, nil)); err != nil {
		t.Fatalf("path commit refused: %v", err)
	}
	a1.g.ApplyPendingCommit()
	b1.g.DiscardPendingCommit()
	processAll(outA.Commit, a1)
	w.refused("stale commit", b1.id(), commitSend(1, outB, nil, nil), wire.Code_CODE_STALE_EPOCH)
	w.refused("stale commit with a lying wire epoch", b1.id(), commitSend(2, outB, nil, nil), wire.Code_CODE_STALE_EPOCH)

	// Committer ≠ sender among members: carl sends bob's commit.
	outB, err = b1.g.Commit(mls.CommitOptions{UpdatePath: true})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("bob's commit sent by carl", c1.id(), commitSend(2, outB, nil, nil), wire.Code_CODE_BAD_REQUEST)
	b1.g.DiscardPendingCommit()

	gi := func() []byte { return w.snap().info }

	// External join by a user with no device in the group.
	_, mcommit, err := mls.JoinExternal(w.cfg, gi(), m1.signer, mls.BasicCredential(m1.id()), mls.ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("external join by a non-roster user", m1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 2,
		Payload: mcommit, AddDevices: []string{m1.id()}}, wire.Code_CODE_NOT_MEMBER)
	// ... and the same commit sent by a member's device.
	w.refused("an external commit sent by another device", b1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 2,
		Payload: mcommit}, wire.Code_CODE_BAD_REQUEST)

	// External join by ann's second device: accepted (today's rule).
	a2g, a2commit, err := mls.JoinExternal(w.cfg, gi(), a2.signer, mls.BasicCredential(a2.id()), mls.ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a2gi, err := a2g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	w.refused("a commit without a GroupInfo", a2.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 2, Payload: a2commit,
		AddDevices: []string{a2.id()}}, wire.Code_CODE_BAD_REQUEST)
	if _, err := w.send(a2.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 2, Payload: a2commit,
		AddDevices: []string{a2.id()}, GroupInfo: a2gi}); err != nil {
		t.Fatalf("external join by ann's second device: %v", err)
	}
	a2.g = a2g
	processAll(a2commit, nil)
	members = append(members, a2)
	if s := w.snap(); s.epoch != 3 || len(s.members) != 4 {
		t.Fatalf("after the external join: epoch %d members %v", s.epoch, s.members)
	}

	// Resync: bob's device lost its state and replaces its own leaf.
	infoNow, err := a1.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	b1new, rcommit, err := mls.JoinExternal(w.cfg, infoNow, b1.signer, mls.BasicCredential(b1.id()), mls.ExternalJoinOptions{Resync: true})
	if err != nil {
		t.Fatal(err)
	}
	before := w.snap()
	b1gi, err := b1new.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(b1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 3, Payload: rcommit, GroupInfo: b1gi}); err != nil {
		t.Fatalf("resync refused: %v", err)
	}
	b1.g = nil
	processAll(rcommit, nil)
	b1.g = b1new
	if after := w.snap(); after.epoch != 4 || !slices.Equal(after.members, before.members) {
		t.Fatalf("resync: epoch %d members %v, want epoch 4 members %v", after.epoch, after.members, before.members)
	}

	// Proposal by reference: bob proposes removing carl; a proposal sent
	// by another device is refused; ann commits it by reference.
	cl, _ := b1.g.LeafOf([]byte(c1.id()))
	prop, err := b1.g.ProposeRemove(cl)
	if err != nil {
		t.Fatal(err)
	}
	w.refused("bob's proposal sent by ann", a1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_PROPOSAL, Epoch: 4, Payload: prop}, wire.Code_CODE_BAD_REQUEST)
	w.refused("a proposal that is not MLS", a1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_PROPOSAL, Epoch: 4, Payload: []byte("x")}, wire.Code_CODE_BAD_REQUEST)
	if _, err := w.send(b1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_PROPOSAL, Epoch: 4, Payload: prop}); err != nil {
		t.Fatalf("proposal refused: %v", err)
	}
	for _, d := range members {
		if d != b1 {
			if _, err := d.g.Process(prop); err != nil {
				t.Fatalf("%s processing the proposal: %v", d.id(), err)
			}
		}
	}
	out, err = a1.g.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("a by-reference remove declared as none", a1.id(), commitSend(4, out, []string{c1.id()}, nil), wire.Code_CODE_BAD_REQUEST)
	if _, err := w.send(a1.id(), commitSend(4, out, nil, []string{c1.id()})); err != nil {
		t.Fatalf("commit of the proposal by reference: %v", err)
	}
	if s := w.snap(); s.epoch != 5 || slices.Contains(s.members, c1.id()) || len(s.members) != 3 {
		t.Fatalf("after the remove by reference: epoch %d members %v", s.epoch, s.members)
	}
}

// TestHubNoPublicState: a conversation created without the creator's
// GroupInfo accepts no commit (unless UnverifiedCommits), and a GroupInfo
// that is not the creator's epoch 0 of this conversation is refused at
// creation.
func TestHubNoPublicState(t *testing.T) {
	w := newVWorld(t)
	a1 := w.dev("ann@a.example/A1")
	err := w.db.Write(context.Background(), func(tx *storage.Tx) error {
		_, err := w.h.Create("test", tx, &wire.CreateConversation{ConversationId: w.conv, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP},
			storage.Member{Address: a1.id(), DeviceID: "A1"}, nil, 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.send(a1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Payload: []byte("x"), AddDevices: []string{"bob@a.example/B1"}, Welcome: []byte("w")})
	if !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
		t.Fatalf("commit without a public state: %v", err)
	}
	g, err := mls.NewGroup(w.cfg, w.s, []byte("other@a.example"), a1.signer, mls.BasicCredential(a1.id()), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := g.GroupInfo()
	b1 := w.dev("bob@a.example/B1")
	gb, _ := mls.NewGroup(w.cfg, w.s, []byte("g2@a.example"), b1.signer, mls.BasicCredential(b1.id()), mls.GroupOptions{})
	gib, _ := gb.GroupInfo()
	for _, tc := range []struct {
		what, id string
		gi       []byte
	}{{"another group's info", "g2@a.example", gi}, {"another creator's info", "g2@a.example", gib}, {"garbage", "g3@a.example", []byte("x")}} {
		err := w.db.Write(context.Background(), func(tx *storage.Tx) error {
			_, err := w.h.Create("test", tx, &wire.CreateConversation{ConversationId: tc.id, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP, GroupInfo: tc.gi},
				storage.Member{Address: a1.id(), DeviceID: "A1"}, nil, 1)
			return err
		})
		if !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
			t.Fatalf("create with %s: %v", tc.what, err)
		}
	}
}

// TestHubExternalInRoleGroup: in a group with the admin key (decision
// 0003), a device's resync and a new device's external join need no
// admin signature but, like every commit there, must carry the new
// epoch's GroupInfo (the joiner's Group.GroupInfo() after JoinExternal).
func TestHubExternalInRoleGroup(t *testing.T) {
	w := newVWorld(t)
	a1, a2, b1 := w.dev("ann@a.example/A1"), w.dev("ann@a.example/A2"), w.dev("bob@a.example/B1")
	adminPub, _, _ := ed25519.GenerateKey(rand.Reader)
	caps := mls.KeyPackageOptions{Capabilities: mls.Capabilities{Extensions: []mls.ExtensionType{groupauth.ExtensionType}}}
	var err error
	a1.g, err = mls.NewGroup(w.cfg, w.s, []byte(w.conv), a1.signer, mls.BasicCredential(a1.id()),
		mls.GroupOptions{Extensions: mls.Extensions{{Type: groupauth.ExtensionType, Data: adminPub}}, Leaf: caps})
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := a1.g.GroupInfo()
	err = w.db.Write(context.Background(), func(tx *storage.Tx) error {
		_, err := w.h.Create("test", tx, &wire.CreateConversation{ConversationId: w.conv, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP, GroupInfo: gi},
			storage.Member{Address: a1.id(), DeviceID: "A1"}, nil, 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	kp, priv, err := mls.NewKeyPackage(w.s, rand.Reader, b1.signer, mls.BasicCredential(b1.id()), caps)
	if err != nil {
		t.Fatal(err)
	}
	out, err := a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kp}}) // epoch 0, the creator alone: no admin signature
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(a1.id(), commitSend(0, out, nil, nil)); err != nil {
		t.Fatalf("creator's first commit: %v", err)
	}
	a1.g.ApplyPendingCommit()
	if b1.g, err = mls.JoinFromWelcome(w.cfg, out.Welcome, kp, priv, mls.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	// bob resyncs: without a GroupInfo refused, with his new one accepted.
	info, _ := a1.g.GroupInfo()
	nb, rc, err := mls.JoinExternal(w.cfg, info, b1.signer, mls.BasicCredential(b1.id()), mls.ExternalJoinOptions{Resync: true, Leaf: caps})
	if err != nil {
		t.Fatal(err)
	}
	w.refused("resync without a GroupInfo in a role group", b1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 1, Payload: rc}, wire.Code_CODE_BAD_REQUEST)
	ngi, err := nb.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(b1.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 1, Payload: rc, GroupInfo: ngi}); err != nil {
		t.Fatalf("resync with its GroupInfo: %v", err)
	}
	if _, err := a1.g.Process(rc); err != nil {
		t.Fatal(err)
	}
	// ann's second device joins by external commit, with its GroupInfo.
	info, _ = a1.g.GroupInfo()
	na, ac, err := mls.JoinExternal(w.cfg, info, a2.signer, mls.BasicCredential(a2.id()), mls.ExternalJoinOptions{Leaf: caps})
	if err != nil {
		t.Fatal(err)
	}
	agi, _ := na.GroupInfo()
	if _, err := w.send(a2.id(), &wire.Send{Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 2, Payload: ac, GroupInfo: agi,
		AddDevices: []string{a2.id()}}); err != nil {
		t.Fatalf("external join with its GroupInfo: %v", err)
	}
	if s := w.snap(); s.epoch != 3 || !slices.Equal(s.members, []string{a1.id(), a2.id(), b1.id()}) {
		t.Fatalf("epoch %d members %v", s.epoch, s.members)
	}
}
