package hub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

var errRollback = errors.New("fuzz: roll back")

// fuzzMsg is one Send of a fuzz input: who sends it, its kind, which
// roster change it declares, its payload and GroupInfo.
type fuzzMsg struct {
	sender, kind, declared byte
	payload, groupInfo     []byte
}

func encodeFuzz(ms ...fuzzMsg) []byte {
	var b []byte
	for _, m := range ms {
		b = append(b, m.sender, m.kind, m.declared)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.payload)))
		b = append(b, m.payload...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.groupInfo)))
		b = append(b, m.groupInfo...)
	}
	return b
}

func decodeFuzz(b []byte) []fuzzMsg {
	var out []fuzzMsg
	take := func() []byte {
		if len(b) < 4 {
			b = nil
			return nil
		}
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		n = min(n, len(b))
		v := b[:n]
		b = b[n:]
		return v
	}
	for len(b) >= 3 && len(out) < 4 {
		m := fuzzMsg{sender: b[0], kind: b[1], declared: b[2]}
		b = b[3:]
		m.payload, m.groupInfo = take(), take()
		out = append(out, m)
	}
	return out
}

// FuzzHubAcceptCommit feeds sequences of up to four Sends (commits,
// proposals, application messages; real MLS commits, proposals and
// external joins of the test group as seeds, and their mutations) from
// the group's devices and outsiders to Hub.Accept, inside one writer
// transaction that is rolled back after each input. It checks that a
// refused Send changes nothing, that nothing but a *wire.Error comes
// out, and that after every accepted commit the hub's roster is exactly
// the member list of its public MLS state, at the conversation's epoch.
func FuzzHubAcceptCommit(f *testing.F) {
	w := newVWorld(f)
	w.create()
	a1, a2, b1, c1 := w.dev("ann@a.example/A1"), w.dev("ann@a.example/A2"), w.dev("bob@a.example/B1"), w.dev("carl@b.example/C1")
	senders := []string{a1.id(), a2.id(), b1.id(), c1.id(), "mallory@c.example/M1"}
	kinds := []wire.MessageKind{wire.MessageKind_MESSAGE_KIND_COMMIT, wire.MessageKind_MESSAGE_KIND_PROPOSAL, wire.MessageKind_MESSAGE_KIND_APPLICATION}
	declared := [][2][]string{{}, {{b1.id(), c1.id()}}, {{b1.id()}}, {{"mallory@c.example/M1"}}, {nil, {a1.id()}}}

	_, kpB, _ := w.keyPackage(b1.id())
	_, kpC, _ := w.keyPackage(c1.id())
	add, err := a1.g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kpB, kpC}})
	if err != nil {
		f.Fatal(err)
	}
	a1.g.DiscardPendingCommit()
	prop, err := a1.g.ProposeAdd(kpB)
	if err != nil {
		f.Fatal(err)
	}
	byRef, err := a1.g.Commit(mls.CommitOptions{})
	if err != nil {
		f.Fatal(err)
	}
	a1.g.DiscardPendingCommit()
	_, ext, err := mls.JoinExternal(w.cfg, w.snap().info, a2.signer, mls.BasicCredential(a2.id()), mls.ExternalJoinOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeFuzz(fuzzMsg{0, 0, 1, add.Commit, add.GroupInfo}))
	f.Add(encodeFuzz(fuzzMsg{0, 0, 0, add.Commit, add.GroupInfo}, fuzzMsg{2, 2, 0, []byte("hello"), nil}))
	f.Add(encodeFuzz(fuzzMsg{0, 1, 0, prop, nil}, fuzzMsg{0, 0, 2, byRef.Commit, byRef.GroupInfo}))
	f.Add(encodeFuzz(fuzzMsg{1, 0, 0, ext, nil}, fuzzMsg{0, 0, 1, add.Commit, add.GroupInfo}))
	f.Add(encodeFuzz(fuzzMsg{0, 0, 3, []byte("not mls"), []byte("gi")}))
	f.Add(encodeFuzz(fuzzMsg{4, 0, 0, add.Commit, nil}))

	f.Fuzz(func(t *testing.T, in []byte) {
		msgs := decodeFuzz(in)
		err := w.db.Write(context.Background(), func(tx *storage.Tx) error {
			for i, m := range msgs {
				from, _ := identity.ParseDevice(senders[int(m.sender)%len(senders)])
				d := declared[int(m.declared)%len(declared)]
				send := &wire.Send{ConversationId: w.conv, MessageId: fmt.Sprint("f", i), Kind: kinds[int(m.kind)%len(kinds)],
					Payload: m.payload, GroupInfo: m.groupInfo, AddDevices: d[0], RemoveDevices: d[1]}
				before, err := w.snapTx(tx)
				if err != nil {
					return err
				}
				send.Epoch = before.epoch
				if len(send.AddDevices) > 0 {
					send.Welcome = []byte("welcome")
				}
				if send.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT && len(send.AddDevices) == 0 && len(m.payload) > 0 {
					send.Welcome = add.Welcome
				}
				if err := w.h.ValidateSend("fuzz", send); err != nil {
					continue
				}
				_, err = w.h.Accept("fuzz", tx, &Input{Send: send, Sender: from, NowMs: 1})
				after, serr := w.snapTx(tx)
				if serr != nil {
					return serr
				}
				if err != nil {
					var we *wire.Error
					if !errors.As(err, &we) || we.Kind == wire.Code_CODE_INTERNAL {
						t.Fatalf("Send %d: not a refusal: %v", i, err)
					}
					if !after.equal(before) {
						t.Fatalf("Send %d refused (%v) but the conversation changed", i, err)
					}
					continue
				}
				if send.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT {
					continue
				}
				pg, err := mls.UnmarshalPublicGroup(after.state)
				if err != nil {
					t.Fatalf("stored state: %v", err)
				}
				var tree []string
				for _, mb := range pg.Members() {
					tree = append(tree, string(mb.Identity))
				}
				slices.Sort(tree)
				if after.epoch != before.epoch+1 || pg.Epoch() != after.epoch || !slices.Equal(tree, after.members) {
					t.Fatalf("accepted commit: epoch %d -> %d (state %d), roster %v, tree %v", before.epoch, after.epoch, pg.Epoch(), after.members, tree)
				}
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
	})
}
