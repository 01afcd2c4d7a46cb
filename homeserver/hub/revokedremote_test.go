package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

// TestHubRevokedRemoteDevice: in a group with the admin key (decision
// 0003), a device of another server's user that is no longer on its
// user's signed list, as the hub holds it, is revoked: any member may
// remove it without the admin's signature. A removed remote device that
// the hub's copy still lists is judged on a fresh list: unless that list
// was fetched for this Send, the commit is refused with CODE_UNAVAILABLE
// and the list fetched, and the retry is judged on what was fetched. A
// device still listed on a fresh list needs the admin (at once when the
// commit needs the admin whatever the lists say), whose own signed
// commits pass at once.
func TestHubRevokedRemoteDevice(t *testing.T) {
	w := newVWorld(t)
	a1, b1 := w.dev("ann@a.example/A1"), w.dev("bob@a.example/B1")
	carl := identity.UserAddress{Local: "carl", Domain: "b.example"}
	var fetches [][]string
	w.h.cfg.FetchLists = func(users []string) { fetches = append(fetches, users) }

	// carl's signed lists, as his server publishes them: version 2 lists
	// C1, C2 and C3; 3 drops C2; 4 drops C3.
	rk, err := identity.NewRecoveryKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cs := map[string]*vDevice{}
	for _, id := range []string{"C1", "C2", "C3"} {
		if id == "C1" {
			cs[id] = w.dev("carl@b.example/C1")
			continue
		}
		sg, _ := w.s.GenerateSignatureKey(rand.Reader)
		cs[id] = &vDevice{addr: identity.DeviceAddress{User: carl, Device: id}, signer: sg}
		w.devs[cs[id].id()] = cs[id]
	}
	putCarl := func(version uint64, ids ...string) {
		t.Helper()
		l := &identity.DeviceList{User: carl, Version: version, IssuedMs: int64(version)}
		for _, id := range ids {
			l.Devices = append(l.Devices, identity.Device{DeviceID: id, SignatureKey: cs[id].signer.Public(), Name: id})
		}
		list, sig, err := l.Sign(rk.Signer())
		if err != nil {
			t.Fatal(err)
		}
		err = w.db.Write(context.Background(), func(tx *storage.Tx) error {
			return tx.PutRemoteList(&storage.RemoteList{User: carl.String(), Version: version,
				IdentityKey: rk.Signer().Public().Bytes(), List: list, Signature: sig})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	putCarl(2, "C1", "C2", "C3")

	// ann creates the group with the admin key and adds bob and carl's
	// three devices (epoch 0, alone: no signature).
	adminPub, adminPriv, _ := ed25519.GenerateKey(rand.Reader)
	caps := mls.KeyPackageOptions{Capabilities: mls.Capabilities{Extensions: []mls.ExtensionType{groupauth.ExtensionType}}}
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
	var kps []*mls.KeyPackage
	var bobKP *mls.KeyPackage
	var bobPriv *mls.KeyPackagePrivate
	for _, d := range []*vDevice{b1, cs["C1"], cs["C2"], cs["C3"]} {
		kp, priv, err := mls.NewKeyPackage(w.s, rand.Reader, d.signer, mls.BasicCredential(d.id()), caps)
		if err != nil {
			t.Fatal(err)
		}
		if d == b1 {
			bobKP, bobPriv = kp, priv
		}
		kps = append(kps, kp)
	}
	out, err := a1.g.Commit(mls.CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(a1.id(), commitSend(0, out, nil, nil)); err != nil {
		t.Fatalf("creator's first commit: %v", err)
	}
	a1.g.ApplyPendingCommit()
	if b1.g, err = mls.JoinFromWelcome(w.cfg, out.Welcome, bobKP, bobPriv, mls.JoinOptions{}); err != nil {
		t.Fatal(err)
	}

	// send runs m from d through the hub as the server does: fetched names
	// the lists fetched for it (ListsToFetch) just before.
	send := func(d *vDevice, m *wire.Send, fetched ...string) error {
		t.Helper()
		w.seq++
		if m.MessageId == "" {
			m.MessageId = "r" + string(rune('a'+w.seq))
			m.ConversationId = w.conv
		}
		in := &Input{Send: m, Sender: d.addr, NowMs: 1}
		for _, u := range fetched {
			if in.Fetched == nil {
				in.Fetched = map[string]bool{}
			}
			in.Fetched[u] = true
		}
		return w.db.Write(context.Background(), func(tx *storage.Tx) error {
			_, err := w.h.Accept("test", tx, in)
			return err
		})
	}
	// remove makes d's commit removing carl's devices ids (or other
	// devices, by address), signed by the admin key when sign is set.
	remove := func(d *vDevice, sign bool, ids ...string) *wire.Send {
		t.Helper()
		var devs []string
		var leaves []mls.LeafIndex
		for _, id := range ids {
			dev := id
			if c, ok := cs[id]; ok {
				dev = c.id()
			}
			l, ok := d.g.LeafOf([]byte(dev))
			if !ok {
				t.Fatalf("%s not in the group", dev)
			}
			devs, leaves = append(devs, dev), append(leaves, l)
		}
		opts := mls.CommitOptions{Remove: leaves}
		if sign {
			opts.AuthenticatedData = groupauth.Sign(adminPriv, w.conv, d.g.Epoch(), groupauth.Change{Removed: devs})
		}
		o, err := d.g.Commit(opts)
		if err != nil {
			t.Fatal(err)
		}
		return commitSend(d.g.Epoch(), o, nil, devs)
	}
	// merged applies an accepted commit of d at both ann and bob.
	merged := func(d *vDevice, m *wire.Send) {
		t.Helper()
		if _, err := d.g.ApplyPendingCommit(); err != nil {
			t.Fatal(err)
		}
		for _, o := range []*vDevice{a1, b1} {
			if o != d {
				if _, err := o.g.Process(m.Payload); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	toFetch := func(d *vDevice, m *wire.Send) []string {
		t.Helper()
		var users []string
		err := w.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
			users, err = w.h.ListsToFetch(tx, &Input{Send: m, Sender: d.addr})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return users
	}

	// Still listed on a fresh list: bob (no admin) may not remove C3.
	m := remove(b1, false, "C3")
	if got := toFetch(b1, m); !slices.Equal(got, []string{carl.String()}) {
		t.Fatalf("ListsToFetch for the removal of a listed device: %v", got)
	}
	before := w.snap()
	if err := send(b1, m); !wire.Is(err, wire.Code_CODE_UNAVAILABLE) {
		t.Fatalf("removal of a device listed on a list not fetched now: %v, want CODE_UNAVAILABLE", err)
	}
	if len(fetches) != 1 || !slices.Equal(fetches[0], []string{carl.String()}) {
		t.Fatalf("lists fetched after the refusal: %v", fetches)
	}
	if err := send(b1, m, carl.String()); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("removal of a device listed on the list fetched for it: %v, want CODE_FORBIDDEN", err)
	}
	if !w.snap().equal(before) {
		t.Fatal("refused, but the conversation changed")
	}
	b1.g.DiscardPendingCommit()
	// With the removal of a device that needs the admin in any case (ann's,
	// on her list here), no list fetch can help: CODE_FORBIDDEN at once.
	fetches = nil
	if err := send(b1, remove(b1, false, "C3", a1.id())); !wire.Is(err, wire.Code_CODE_FORBIDDEN) {
		t.Fatalf("removal of a listed local device and a remote one: %v, want CODE_FORBIDDEN", err)
	}
	b1.g.DiscardPendingCommit()
	if len(fetches) != 0 {
		t.Fatalf("lists fetched for a commit no list could allow: %v", fetches)
	}

	// carl revoked C2 (version 3) and this server holds that list: bob
	// removes C2 without the admin.
	putCarl(3, "C1", "C3")
	m = remove(b1, false, "C2")
	if got := toFetch(b1, m); len(got) != 0 {
		t.Fatalf("ListsToFetch for the removal of an unlisted device: %v", got)
	}
	if err := send(b1, m); err != nil {
		t.Fatalf("a member's removal of a revoked remote device: %v", err)
	}
	merged(b1, m)

	// carl revoked C3 (version 4), which this server has not fetched: the
	// first try is CODE_UNAVAILABLE, and once the list is here the retry
	// is accepted.
	fetches = nil
	m = remove(b1, false, "C3")
	if err := send(b1, m); !wire.Is(err, wire.Code_CODE_UNAVAILABLE) {
		t.Fatalf("removal of a device the list here still names: %v, want CODE_UNAVAILABLE", err)
	}
	if len(fetches) != 1 || !slices.Equal(fetches[0], []string{carl.String()}) {
		t.Fatalf("lists fetched after the refusal: %v", fetches)
	}
	putCarl(4, "C1") // the fetch
	if got := toFetch(b1, m); len(got) != 0 {
		t.Fatalf("ListsToFetch after the fetch: %v", got)
	}
	if err := send(b1, m); err != nil {
		t.Fatalf("the retry after the fetch: %v", err)
	}
	merged(b1, m)

	// The admin's own commit removing a device still listed here passes at
	// once, fetched or not.
	fetches = nil
	m = remove(a1, true, "C1")
	if err := send(a1, m); err != nil {
		t.Fatalf("the admin's removal of a listed device: %v", err)
	}
	merged(a1, m)
	if len(fetches) != 0 {
		t.Fatalf("the admin's commit fetched %v", fetches)
	}
	if s := w.snap(); s.epoch != 4 || !slices.Equal(s.members, []string{a1.id(), b1.id()}) {
		t.Fatalf("epoch %d members %v", s.epoch, s.members)
	}
}
