package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/keys/mls/suite"
	"hearth/storage"
)

type gaMember struct {
	id     string
	signer *suite.Signer
	g      *mls.Group
}

// TestGroupAuthHub: the hub's half of decision 0003 on real MLS commits:
// a member's remove of another user needs the admin signature (refused
// with CODE_FORBIDDEN without it or with a wrong one), the next GroupInfo
// must keep the admin key, and groups without the key are not checked.
func TestGroupAuthHub(t *testing.T) {
	s, _ := suite.Lookup(1)
	adminPub, adminPriv, _ := ed25519.GenerateKey(rand.Reader)
	caps := mls.KeyPackageOptions{Capabilities: mls.Capabilities{Extensions: []mls.ExtensionType{groupauth.ExtensionType}}}
	cfg := mls.Config{Validator: mls.AcceptAll{}}
	var ms []*gaMember
	for _, id := range []string{"ann@x/1", "bob@x/1", "cy@x/1"} {
		sg, err := s.GenerateSignatureKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, &gaMember{id: id, signer: sg})
	}
	const conv = "g1@x"
	var err error
	ms[0].g, err = mls.NewGroup(cfg, s, []byte(conv), ms[0].signer, mls.BasicCredential(ms[0].id),
		mls.GroupOptions{Extensions: mls.Extensions{{Type: groupauth.ExtensionType, Data: adminPub}}, Leaf: caps})
	if err != nil {
		t.Fatal(err)
	}
	var kps []*mls.KeyPackage
	var privs []*mls.KeyPackagePrivate
	for _, m := range ms[1:] {
		kp, priv, err := mls.NewKeyPackage(s, rand.Reader, m.signer, mls.BasicCredential(m.id), caps)
		if err != nil {
			t.Fatal(err)
		}
		kps, privs = append(kps, kp), append(privs, priv)
	}
	out, err := ms[0].g.Commit(mls.CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms[0].g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	if ms[1].g, err = mls.JoinFromWelcome(cfg, out.Welcome, kps[0], privs[0], mls.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(filepath.Join(t.TempDir(), "h.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := New(Config{Domain: "x"})
	c := &storage.Conversation{ID: conv, Kind: int(wire.ConversationKind_CONVERSATION_KIND_GROUP), Epoch: 1, GroupInfo: out.GroupInfo}
	roster := []string{"ann@x/1", "bob@x/1", "cy@x/1"}
	// bob removes cy: signed by sign (nil: unsigned).
	bobRemove := func(sign ed25519.PrivateKey) *wire.Send {
		l, _ := ms[1].g.LeafOf([]byte("cy@x/1"))
		opts := mls.CommitOptions{Remove: []mls.LeafIndex{l}}
		if sign != nil {
			opts.AuthenticatedData = groupauth.Sign(sign, conv, 1, groupauth.Change{Removed: []string{"cy@x/1"}})
		}
		o, err := ms[1].g.Commit(opts)
		if err != nil {
			t.Fatal(err)
		}
		ms[1].g.DiscardPendingCommit()
		return &wire.Send{ConversationId: conv, Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 1, Payload: o.Commit,
			RemoveDevices: []string{"cy@x/1"}, GroupInfo: o.GroupInfo}
	}
	check := func(m *wire.Send, kind int) error {
		var err error
		db.Read(context.Background(), func(tx *storage.Tx) error {
			cc := *c
			cc.Kind = kind
			err = srv.checkGroupAuth("test", tx, &cc, &Input{Send: m, Sender: identity.DeviceAddress{User: identity.UserAddress{Local: "bob", Domain: "x"}, Device: "1"}}, roster)
			return nil
		})
		return err
	}
	group := int(wire.ConversationKind_CONVERSATION_KIND_GROUP)
	if err := check(bobRemove(nil), group); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("unsigned remove by a member: %v, want CODE_FORBIDDEN", err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := check(bobRemove(other), group); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("remove signed with another key: %v, want CODE_FORBIDDEN", err)
	}
	if err := check(bobRemove(adminPriv), group); err != nil {
		t.Fatalf("admin-signed remove refused: %v", err)
	}
	noInfo := bobRemove(adminPriv)
	noInfo.GroupInfo = nil
	if err := check(noInfo, group); !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
		t.Fatalf("commit without GroupInfo: %v, want CODE_BAD_REQUEST", err)
	}
	lying := bobRemove(adminPriv)
	lying.AddDevices = []string{"bob@x/2"}
	if err := check(lying, group); !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
		t.Fatalf("add_devices not in the commit: %v, want CODE_BAD_REQUEST", err)
	}
	if err := check(bobRemove(nil), int(wire.ConversationKind_CONVERSATION_KIND_DIRECT)); err != nil {
		t.Fatalf("a 1:1 is not checked: %v", err)
	}
}
