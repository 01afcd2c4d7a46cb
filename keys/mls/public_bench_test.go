package mls

import (
	"testing"

	"hearth/keys/mls/handshake"
	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
	"hearth/keys/mls/treemath"
)

// BenchmarkPublicGroup1024: the hub's side of a 1,024-member group (one
// creator commit added 1,023 KeyPackages): starting the public state from
// the creator's GroupInfo (every leaf signature and parent hash checked),
// saving and restoring it, and verifying commits: the first path commit
// after creation (its path encrypts to every other leaf, parents were
// blank), another member's path commit once the creator's path is in
// (parents set only on the creator's direct path, so it still encrypts to
// about every leaf), an add of one KeyPackage and a remove (with path),
// and the hub's whole step for a commit (restore, Apply, save).
func BenchmarkPublicGroup1024(b *testing.B) {
	for _, id := range groupBenchSuites {
		s, _ := suite.Lookup(id)
		b.Run(id.String(), func(b *testing.B) { benchPublic(b, s) })
	}
}

func benchPublic(b *testing.B, s *suite.Suite) {
	creator, member := bigGroup(b, s, 1024)
	gi := mustGroupInfo(b, creator.g)
	opts := PublicOptions{Validator: handshake.AcceptAll{}}
	pg, err := NewPublicGroup(gi, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("new-from-groupinfo", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewPublicGroup(gi, nil, opts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(gi)), "groupinfo-bytes")
	})
	state := pg.Marshal()
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			state = pg.Marshal()
		}
		b.ReportMetric(float64(len(state)), "state-bytes")
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := UnmarshalPublicGroup(state); err != nil {
				b.Fatal(err)
			}
		}
	})
	apply := func(name string, commit []byte, pg *PublicGroup) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := pg.Apply(commit, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(commit)), "commit-bytes")
		})
	}
	commitBy := func(d *device, o CommitOptions) []byte {
		out, err := d.g.Commit(o)
		if err != nil {
			b.Fatal(err)
		}
		d.g.DiscardPendingCommit()
		return out.Commit
	}
	first := commitBy(creator, CommitOptions{UpdatePath: true})
	apply("apply-first-path", first, pg)
	kp, _ := newDevice(b, s, "new@example/1").keyPackage(b, s)
	apply("apply-add", commitBy(creator, CommitOptions{Add: []*message.KeyPackage{kp}}), pg)
	apply("apply-remove", commitBy(creator, CommitOptions{Remove: []treemath.LeafIndex{1000}}), pg)

	// Member 1 commits once the creator's path is applied.
	out, err := creator.g.Commit(CommitOptions{UpdatePath: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := creator.g.ApplyPendingCommit(); err != nil {
		b.Fatal(err)
	}
	if _, err := member.g.Process(out.Commit); err != nil {
		b.Fatal(err)
	}
	pg2, _, err := pg.Apply(out.Commit, opts)
	if err != nil {
		b.Fatal(err)
	}
	later := commitBy(member, CommitOptions{UpdatePath: true})
	apply("apply-member-path", later, pg2)
	state2 := pg2.Marshal()
	b.Run("hub-step", func(b *testing.B) {
		defer b.ReportMetric(float64(len(state2)), "state-bytes")
		for b.Loop() {
			p, err := UnmarshalPublicGroup(state2)
			if err != nil {
				b.Fatal(err)
			}
			next, _, err := p.Apply(later, opts)
			if err != nil {
				b.Fatal(err)
			}
			_ = next.Marshal()
		}
	})
}
