package homeserver

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
)

// FuzzPresenceQuery: arbitrary presence queries from a peer (users,
// requester, vouched, as decoded from the network) reach a real server's
// answer on a real database. Nothing panics; an answer names only users
// asked, one each, with a valid state; and alice, who shares her last
// seen with nobody, never has one shown. The corpus in
// testdata/fuzz/FuzzPresenceQuery is replayed by go test.
func FuzzPresenceQuery(f *testing.F) {
	a := newFedNode(f, "a.example")
	_, alice := a.addUser("alice")
	alice.must(&wire.ClientFrame{Body: &wire.ClientFrame_PresenceSettings{PresenceSettings: &wire.PresenceSettings{
		LastSeen: wire.LastSeenVisibility_LAST_SEEN_NOBODY}}})
	alice.conn.Close() // offline: she has a last seen
	a.addUser("amy")
	for _, q := range []*fedwire.GetPresence{
		{Users: []string{"alice@a.example"}, Requester: "bob@b.example"},
		{Users: []string{"alice@a.example", "amy@a.example"}, Requester: "bob@b.example", Vouched: []string{"alice@a.example"}},
		{Users: []string{"nobody@a.example"}, Requester: "bob@b.example"},
		{Users: []string{"carol@c.example"}, Requester: "bob@b.example"},
		{Users: []string{"alice@a.example"}, Requester: "mallory@c.example"},
		{Requester: "bob@b.example"},
	} {
		b, _ := proto.Marshal(q)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		q := &fedwire.GetPresence{}
		if proto.Unmarshal(in, q) != nil {
			return
		}
		res := a.s.fed.Queries.Answer(context.Background(), &fedwire.Query{Origin: "b.example", Destination: "a.example",
			Body: &fedwire.Query_GetPresence{GetPresence: q}})
		if res.GetCode() != fedwire.Code_CODE_OK {
			return
		}
		got := res.GetPresence().GetPresence()
		if len(got) != len(q.Users) {
			t.Fatalf("%d answers to %d users", len(got), len(q.Users))
		}
		for _, p := range got {
			if !slices.Contains(q.Users, p.GetUser()) || p.GetState() > uint32(wire.PresenceState_PRESENCE_STATE_OFFLINE) {
				t.Fatalf("answer %v to %v", p, q)
			}
			if p.GetUser() == "alice@a.example" && p.GetLastActiveMs() != 0 {
				t.Fatalf("alice's hidden last seen shown: %v", p)
			}
		}
	})
}
