package mls

import (
	"fmt"
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treekem"
)

var groupBenchSuites = []suite.ID{1, 0xF001}

// benchKeyPackages makes n devices with KeyPackages.
func benchKeyPackages(b testing.TB, s *suite.Suite, n int) ([]*device, []*message.KeyPackage, []*message.KeyPackagePrivate) {
	var devs []*device
	var kps []*message.KeyPackage
	var privs []*message.KeyPackagePrivate
	for i := range n {
		d := newDevice(b, s, fmt.Sprintf("user%d@example/1", i))
		kp, priv := d.keyPackage(b, s)
		devs, kps, privs = append(devs, d), append(kps, kp), append(privs, priv)
	}
	return devs, kps, privs
}

// bigGroup creates a group of n members in one commit; it returns the
// creator, member 1 (joined from the Welcome) and the commit output.
func bigGroup(b *testing.B, s *suite.Suite, n int) (*device, *device) {
	creator := newDevice(b, s, "creator@example/1")
	devs, kps, privs := benchKeyPackages(b, s, n-1)
	g, err := NewGroup(testConfig(), s, []byte("bench"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	creator.g = g
	commitAndApply(b, creator, CommitOptions{Add: kps}, nil, devs[:1], privs[:1])
	return creator, devs[0]
}

// BenchmarkGroupCreate1024: a new group plus one commit adding 1,023
// KeyPackages (validation, path, Welcome), applied.
func BenchmarkGroupCreate1024(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		b.Run(id.String(), func(b *testing.B) {
			creator := newDevice(b, s, "creator@example/1")
			_, kps, _ := benchKeyPackages(b, s, 1023)
			b.ResetTimer()
			for range b.N {
				g, err := NewGroup(testConfig(), s, []byte("bench"), creator.signer, message.BasicCredential(creator.id), GroupOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := g.Commit(CommitOptions{Add: kps}); err != nil {
					b.Fatal(err)
				}
				if _, err := g.ApplyPendingCommit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGroupCommitPath1024: in a 1,024-member group just created (so
// the committer's path encrypts to every other leaf), one commit with a
// path: creating it, and processing it as another member.
func BenchmarkGroupCommitPath1024(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		b.Run(id.String(), func(b *testing.B) {
			creator, member := bigGroup(b, s, 1024)
			b.Run("commit", func(b *testing.B) {
				for range b.N {
					if _, err := creator.g.Commit(CommitOptions{UpdatePath: true}); err != nil {
						b.Fatal(err)
					}
					creator.g.DiscardPendingCommit()
				}
			})
			b.Run("save-restore", func(b *testing.B) {
				var size int
				for range b.N {
					state := mustMarshal(b, member.g)
					size = len(state)
					if _, err := UnmarshalGroup(state, handshake.AcceptAll{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size), "state-bytes")
			})
			b.Run("process", func(b *testing.B) {
				out, err := creator.g.Commit(CommitOptions{UpdatePath: true})
				if err != nil {
					b.Fatal(err)
				}
				creator.g.DiscardPendingCommit()
				state := mustMarshal(b, member.g)
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					g, err := UnmarshalGroup(state, handshake.AcceptAll{})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if _, err := g.Process(out.Commit); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkApplication1KB: protecting and unprotecting a 1 KB
// application message in a two-member group.
func BenchmarkApplication1KB(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		b.Run(id.String(), func(b *testing.B) {
			alice, bob := bigGroup(b, s, 2)
			msg := make([]byte, 1024)
			b.Run("protect", func(b *testing.B) {
				b.SetBytes(1024)
				for range b.N {
					if _, err := alice.g.Encrypt(msg, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("unprotect", func(b *testing.B) {
				b.SetBytes(1024)
				cts := make([][]byte, b.N)
				for i := range cts {
					var err error
					if cts[i], err = bob.g.Encrypt(msg, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for _, ct := range cts {
					if _, err := alice.g.Process(ct); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkGroupSave1024: what a member of a 1,024-member group does per
// message it sends: encrypt, then save its state, whole (Marshal) or
// split (MarshalSplit, the tree left out), and restore it.
func BenchmarkGroupSave1024(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		b.Run(id.String(), func(b *testing.B) {
			_, member := bigGroup(b, s, 1024)
			var trees map[treekem.TreeRef][]byte
			b.Run("whole", func(b *testing.B) {
				var n int
				for b.Loop() {
					if _, err := member.g.Encrypt([]byte("hello"), nil); err != nil {
						b.Fatal(err)
					}
					n = len(mustMarshal(b, member.g))
				}
				b.ReportMetric(float64(n), "state-bytes")
			})
			b.Run("split", func(b *testing.B) {
				var n int
				for b.Loop() {
					if _, err := member.g.Encrypt([]byte("hello"), nil); err != nil {
						b.Fatal(err)
					}
					state, t, err := member.g.MarshalSplit()
					if err != nil {
						b.Fatal(err)
					}
					n, trees = len(state), t
				}
				b.ReportMetric(float64(n), "state-bytes")
			})
			whole := mustMarshal(b, member.g)
			state, _, _ := member.g.MarshalSplit()
			b.Run("load-whole", func(b *testing.B) {
				for b.Loop() {
					if _, err := UnmarshalGroupConfig(whole, testConfig()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("load-split", func(b *testing.B) {
				for b.Loop() {
					if _, err := UnmarshalGroupSplit(state, lookupIn(trees), testConfig()); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
