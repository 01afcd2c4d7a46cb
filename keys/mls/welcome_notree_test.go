package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

// welcomeGroupInfo opens the GroupInfo inside a Welcome for kp.
func welcomeGroupInfo(t testing.TB, s *suite.Suite, welcome []byte, kp *message.KeyPackage, priv *message.KeyPackagePrivate) *message.GroupInfo {
	t.Helper()
	var m message.MLSMessage
	if err := m.Unmarshal(welcome); err != nil || m.Welcome == nil {
		t.Fatalf("not a Welcome: %v", err)
	}
	gs, err := message.OpenGroupSecrets(s, m.Welcome, kp, priv.InitKey)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := message.OpenGroupInfo(s, m.Welcome, gs.JoinerSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

// TestCommitOmitTreeInWelcome: an add-only commit with OmitTreeInWelcome
// has no path, its Welcome's GroupInfo has no ratchet_tree, the GroupInfo
// for the hub has it, and a joiner joins only with that tree: without one,
// or with the tree of another group or epoch, the join fails.
func TestCommitOmitTreeInWelcome(t *testing.T) {
	for _, id := range []suite.ID{1, 0xF001} {
		s, _ := suite.Lookup(id)
		t.Run(id.String(), func(t *testing.T) {
			creator := newDevice(t, s, "creator@example/1")
			g, err := NewGroup(testConfig(), s, []byte("big"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			creator.g = g
			devs, kps, privs := benchKeyPackages(t, s, 3)
			out, err := g.Commit(CommitOptions{Add: kps, OmitTreeInWelcome: true})
			if err != nil {
				t.Fatal(err)
			}
			var cm message.MLSMessage
			if err := cm.Unmarshal(out.Commit); err != nil {
				t.Fatal(err)
			}
			if cm.PublicMessage.Content.Commit.Path != nil {
				t.Fatal("an add-only commit carries a path")
			}
			if _, ok := welcomeGroupInfo(t, s, out.Welcome, kps[0], privs[0]).Extensions.Find(message.ExtRatchetTree); ok {
				t.Fatal("the Welcome's GroupInfo carries ratchet_tree")
			}
			tr, err := ReadGroupInfoTree(out.GroupInfo)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tr.GroupID, []byte("big")) || tr.Epoch != 1 || len(tr.Identities) != 4 || string(tr.Identities[0]) != creator.id {
				t.Fatalf("group info tree: group %q epoch %d identities %q", tr.GroupID, tr.Epoch, tr.Identities)
			}
			if _, err := g.ApplyPendingCommit(); err != nil {
				t.Fatal(err)
			}
			if _, err := JoinFromWelcome(testConfig(), out.Welcome, kps[0], privs[0], JoinOptions{}); !errors.Is(err, treekem.ErrTree) {
				t.Fatalf("join without a tree: %v, want ErrTree", err)
			}
			// The tree of the epoch before (one member), or of another
			// group, does not match.
			old := treekem.NewOneMemberTree(s, g.st.tree.Leaf(0)).Marshal()
			if _, err := JoinFromWelcome(testConfig(), out.Welcome, kps[0], privs[0], JoinOptions{RatchetTree: old}); !errors.Is(err, treekem.ErrTree) {
				t.Fatalf("join with another epoch's tree: %v, want ErrTree", err)
			}
			other, err := NewGroup(testConfig(), s, []byte("other"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, okps, _ := benchKeyPackages(t, s, 3)
			oout, err := other.Commit(CommitOptions{Add: okps})
			if err != nil {
				t.Fatal(err)
			}
			otr, err := ReadGroupInfoTree(oout.GroupInfo)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := JoinFromWelcome(testConfig(), out.Welcome, kps[0], privs[0], JoinOptions{RatchetTree: otr.RatchetTree}); err == nil {
				t.Fatal("joined with another group's tree")
			}
			for i, d := range devs {
				j, err := JoinFromWelcome(testConfig(), out.Welcome, kps[i], privs[i], JoinOptions{RatchetTree: tr.RatchetTree})
				if err != nil {
					t.Fatalf("%s: %v", d.id, err)
				}
				if !bytes.Equal(j.EpochAuthenticator(), g.EpochAuthenticator()) {
					t.Fatalf("%s: epoch authenticator differs from the creator's", d.id)
				}
				d.g = j
			}
			// The joiners and the creator talk in the new epoch.
			ct, err := devs[2].g.Encrypt([]byte("hello"), nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := g.Process(ct)
			if err != nil || string(r.Plaintext) != "hello" {
				t.Fatalf("creator decrypting a joiner's message: %q %v", r.Plaintext, err)
			}
		})
	}
}

// TestReadGroupInfoTreeRefuses: not a GroupInfo, or one without a tree.
func TestReadGroupInfoTreeRefuses(t *testing.T) {
	s, _ := suite.Lookup(1)
	creator := newDevice(t, s, "creator@example/1")
	g, err := NewGroup(testConfig(), s, []byte("g"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, kps, _ := benchKeyPackages(t, s, 1)
	out, err := g.Commit(CommitOptions{Add: kps, OmitTreeInWelcome: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, msg := range map[string][]byte{"welcome": out.Welcome, "commit": out.Commit, "garbage": []byte{0, 1, 0, 4}, "empty": nil} {
		if _, err := ReadGroupInfoTree(msg); err == nil {
			t.Errorf("%s read as a GroupInfo with a tree", name)
		}
	}
}

// BenchmarkCommitSizes1024 measures the bytes a 1,024-device group's
// handshake puts on the wire: an add-only commit adding k devices to a
// group of 1,024-k (no path; Welcome without the tree) and a path commit
// just after (the path encrypts to every other leaf, as parents are blank).
func BenchmarkCommitSizes1024(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		for _, k := range []int{128, 256} {
			b.Run(fmt.Sprintf("%v/add%d", id, k), func(b *testing.B) {
				creator := newDevice(b, s, "creator@example/1")
				g, err := NewGroup(testConfig(), s, []byte("bench"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
				if err != nil {
					b.Fatal(err)
				}
				_, kps, _ := benchKeyPackages(b, s, 1023)
				var add *CommitOutput
				for len(kps) > 0 {
					n := min(k, len(kps))
					if add, err = g.Commit(CommitOptions{Add: kps[:n], OmitTreeInWelcome: true}); err != nil {
						b.Fatal(err)
					}
					if _, err := g.ApplyPendingCommit(); err != nil {
						b.Fatal(err)
					}
					kps = kps[n:]
				}
				var path *CommitOutput
				for range b.N {
					if path, err = g.Commit(CommitOptions{UpdatePath: true}); err != nil {
						b.Fatal(err)
					}
					g.DiscardPendingCommit()
				}
				b.ReportMetric(float64(len(add.Commit)), "add-commit-B")
				b.ReportMetric(float64(len(add.Welcome)), "add-welcome-B")
				b.ReportMetric(float64(len(add.GroupInfo)), "groupinfo-B")
				b.ReportMetric(float64(len(path.Commit)), "path-commit-B")
				b.ReportMetric(float64(len(path.GroupInfo)), "path-groupinfo-B")
			})
		}
	}
}

// FuzzReadGroupInfoTree: a GroupInfo comes from the hub with a Welcome;
// whatever its bytes, reading it either fails or returns a tree that
// decodes and at most one identity per two encoded nodes.
func FuzzReadGroupInfoTree(f *testing.F) {
	s, _ := suite.Lookup(1)
	creator := newDevice(f, s, "creator@example/1")
	g, err := NewGroup(testConfig(), s, []byte("g"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
	if err != nil {
		f.Fatal(err)
	}
	_, kps, _ := benchKeyPackages(f, s, 2)
	out, err := g.Commit(CommitOptions{Add: kps, OmitTreeInWelcome: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.GroupInfo)
	f.Add(out.Welcome)
	f.Add(out.GroupInfo[:len(out.GroupInfo)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ReadGroupInfoTree(b)
		if err != nil {
			return
		}
		var nodes message.RatchetTreeNodes
		if err := nodes.Unmarshal(tr.RatchetTree); err != nil {
			t.Fatalf("accepted a tree that does not decode: %v", err)
		}
		if len(tr.Identities) > (len(nodes)+1)/2 {
			t.Fatalf("%d identities from %d nodes", len(tr.Identities), len(nodes))
		}
	})
}
