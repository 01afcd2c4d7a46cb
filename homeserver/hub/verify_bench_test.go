package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/keys/mls/suite"
	"hearth/storage"
)

// BenchmarkHubCommit measures Hub.Accept of the creator's commit adding
// n-1 devices (add-N) and then of one path commit (the committer's
// UpdatePath, ciphertexts to every other member) in a group of n devices
// on the default suite, with verification against the
// public state ("verified": load + Apply + VerifyGroupInfo + store) and
// without ("unverified": a conversation without public state,
// Config.UnverifiedCommits, the hub before verification). The difference
// is the hub's added cost per commit. Each iteration runs in one writer
// transaction rolled back afterwards, so the same commit applies every
// time. n is 2 and 256; HEARTH_GROUP_BENCH_N adds another (e.g. 1024).
func BenchmarkHubCommit(b *testing.B) {
	sizes := []int{2, 256}
	if v, err := strconv.Atoi(os.Getenv("HEARTH_GROUP_BENCH_N")); err == nil && v > 1 {
		sizes = append(sizes, v)
	}
	for _, n := range sizes {
		w, add, advance := benchGroup(b, n)
		benchAccept(b, w, fmt.Sprintf("n=%d/add-%d", n, n-1), add)
		benchAccept(b, w, fmt.Sprintf("n=%d/path", n), advance())
	}
}

// benchAccept runs m through Hub.Accept in the verified conversation and
// in the unverified one, rolled back after each iteration.
func benchAccept(b *testing.B, w *vWorld, name string, m *wire.Send) {
	for _, mode := range []string{"verified", "unverified"} {
		conv := w.conv
		if mode == "unverified" {
			conv = "plain@" + vDomain
		}
		b.Run(name+"/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(m.Payload) + len(m.GroupInfo) + len(m.Welcome)))
			for b.Loop() {
				send := &wire.Send{ConversationId: conv, MessageId: m.MessageId, Kind: m.Kind, Epoch: m.Epoch,
					Payload: m.Payload, GroupInfo: m.GroupInfo, Welcome: m.Welcome, AddDevices: m.AddDevices}
				err := w.db.Write(context.Background(), func(tx *storage.Tx) error {
					if _, err := w.h.Accept("bench", tx, &Input{Send: send, Sender: w.devs["u0@"+vDomain+"/D0"].addr, DeviceID: "D0", NowMs: 2}); err != nil {
						return err
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchGroup makes n local users with one device each, a group created
// by u0 and hubbed with its public state (w.conv), a conversation without
// public state ("plain@"), u0's commit adding everyone else (not sent),
// and advance, which has both conversations accept that commit and
// returns u0's next path commit.
func benchGroup(b *testing.B, n int) (*vWorld, *wire.Send, func() *wire.Send) {
	b.Helper()
	s, err := suite.Lookup(suite.Default)
	if err != nil {
		b.Fatal(err)
	}
	db, err := storage.Open(filepath.Join(b.TempDir(), "h.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	w := &vWorld{t: b, s: s, db: db, devs: map[string]*vDevice{}, conv: "g@" + vDomain, cfg: mls.Config{Validator: mls.AcceptAll{}},
		h: New(Config{Domain: vDomain, EpochWindow: 2, MaxMembers: 1024, MaxMessageBytes: 1 << 20, MaxCommitBytes: 64 << 20, UnverifiedCommits: true})}
	var devs []*vDevice
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		for i := range n {
			u := identity.UserAddress{Local: fmt.Sprint("u", i), Domain: vDomain}
			sg, err := s.GenerateSignatureKey(rand.Reader)
			if err != nil {
				return err
			}
			d := &vDevice{addr: identity.DeviceAddress{User: u, Device: fmt.Sprint("D", i)}, signer: sg}
			w.devs[d.id()] = d
			devs = append(devs, d)
			rk, _ := identity.NewRecoveryKey(rand.Reader)
			l := &identity.DeviceList{User: u, Version: 1, IssuedMs: 1, Devices: []identity.Device{{DeviceID: d.addr.Device, SignatureKey: sg.Public(), Name: "d"}}}
			list, sig, err := l.Sign(rk.Signer())
			if err != nil {
				return err
			}
			su := &storage.User{Name: u.Local, PassHash: "x"}
			if err := tx.InsertUser(su); err != nil {
				return err
			}
			if err := tx.InsertIdentityKey(su.ID, rk.Signer().Public().Bytes(), 1); err != nil {
				return err
			}
			if err := tx.PutDeviceList(su.ID, &storage.SignedList{Version: 1, List: list, Signature: sig}); err != nil {
				return err
			}
			if err := tx.InsertDevice(&storage.Device{ID: d.addr.Device, UserID: su.ID, Name: "d", Status: storage.DeviceActive, SignatureKey: sg.Public()}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	c := devs[0]
	if c.g, err = mls.NewGroup(w.cfg, s, []byte(w.conv), c.signer, mls.BasicCredential(c.id()), mls.GroupOptions{}); err != nil {
		b.Fatal(err)
	}
	gi, err := c.g.GroupInfo()
	if err != nil {
		b.Fatal(err)
	}
	var kps []*mls.KeyPackage
	var adds []string
	for _, d := range devs[1:] {
		kp, _, err := mls.NewKeyPackage(s, rand.Reader, d.signer, mls.BasicCredential(d.id()), mls.KeyPackageOptions{})
		if err != nil {
			b.Fatal(err)
		}
		kps, adds = append(kps, kp), append(adds, d.id())
	}
	out, err := c.g.Commit(mls.CommitOptions{Add: kps})
	if err != nil {
		b.Fatal(err)
	}
	creator := storage.Member{Address: c.id(), DeviceID: c.addr.Device}
	addSend := &wire.Send{MessageId: "add", Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Payload: out.Commit,
		Welcome: out.Welcome, GroupInfo: out.GroupInfo, AddDevices: adds}
	convs := []struct {
		id string
		gi []byte
	}{{w.conv, gi}, {"plain@" + vDomain, nil}}
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		for _, cv := range convs {
			if _, err := w.h.Create("bench", tx, &wire.CreateConversation{ConversationId: cv.id, Kind: wire.ConversationKind_CONVERSATION_KIND_DIRECT,
				GroupInfo: cv.gi}, creator, nil, 1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	advance := func() *wire.Send {
		err := db.Write(context.Background(), func(tx *storage.Tx) error {
			for _, cv := range convs {
				m := &wire.Send{ConversationId: cv.id, MessageId: "add-" + cv.id, Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Payload: out.Commit,
					Welcome: out.Welcome, GroupInfo: out.GroupInfo, AddDevices: adds}
				if _, err := w.h.Accept("bench", tx, &Input{Send: m, Sender: c.addr, NowMs: 1}); err != nil {
					return fmt.Errorf("%s: %w", cv.id, err)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.g.ApplyPendingCommit(); err != nil {
			b.Fatal(err)
		}
		next, err := c.g.Commit(mls.CommitOptions{UpdatePath: true})
		if err != nil {
			b.Fatal(err)
		}
		return &wire.Send{MessageId: "path", Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: 1, Payload: next.Commit, GroupInfo: next.GroupInfo}
	}
	return w, addSend, advance
}
