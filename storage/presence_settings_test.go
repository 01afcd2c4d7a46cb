package storage

import (
	"context"
	"testing"
)

// TestPresenceSettingsAndContacts: the last-seen setting and time per
// user (defaults, updates, the time never going back, gone with the
// user), and who counts as sharing a conversation: local users on one
// roster; a remote user on the roster of a conversation hubbed here; not
// one hubbed elsewhere (a follower's copy holds its own devices only).
func TestPresenceSettingsAndContacts(t *testing.T) {
	db, _ := openTest(t)
	const self = "a.example"
	ids := map[string]int64{}
	mustWrite(t, db, func(tx *Tx) error {
		for _, n := range []string{"alice", "bob", "eve"} {
			u := &User{Name: n, PassHash: "h", CreatedMs: 1}
			if err := tx.InsertUser(u); err != nil {
				return err
			}
			ids[n] = u.ID
			if err := tx.InsertDevice(&Device{ID: "D" + n, UserID: u.ID, Name: "d", Status: DeviceActive, CreatedMs: 1}, nil); err != nil {
				return err
			}
		}
		// Hubbed here: alice, bob, and carol of c.example.
		if err := tx.InsertConversation(&Conversation{ID: "g@a.example", Creator: "alice@a.example/Dalice", CreatedMs: 1}, []Member{
			{Address: "alice@a.example/Dalice", DeviceID: "Dalice"}, {Address: "bob@a.example/Dbob", DeviceID: "Dbob"},
			{Address: "carol@c.example/C1"}}, nil); err != nil {
			return err
		}
		// Hubbed at b.example: eve's copy (her device only).
		return tx.InsertConversation(&Conversation{ID: "h@b.example", Creator: "dave@b.example/X", CreatedMs: 1}, []Member{
			{Address: "eve@a.example/Deve", DeviceID: "Deve"}}, nil)
	})
	read := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := db.Read(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	read(func(tx *Tx) error {
		p, err := tx.PresenceSettings(ids["alice"])
		if err != nil || p.LastSeen != LastSeenEveryone || p.LastSeenMs != 0 {
			t.Fatalf("defaults %+v %v", p, err)
		}
		for _, c := range []struct {
			a, b string
			want bool
		}{{"alice", "bob", true}, {"bob", "alice", true}, {"alice", "eve", false}} {
			if got, err := tx.SharesConversation(ids[c.a], ids[c.b]); err != nil || got != c.want {
				t.Fatalf("SharesConversation(%s, %s) = %v %v", c.a, c.b, got, err)
			}
		}
		for _, c := range []struct {
			user   string
			remote string
			want   bool
		}{{"alice", "carol@c.example", true}, {"alice", "carol@c.exampl", false}, {"eve", "carol@c.example", false},
			{"eve", "dave@b.example", false}} {
			if got, err := tx.SharesHubbedConversation(ids[c.user], c.remote, self); err != nil || got != c.want {
				t.Fatalf("SharesHubbedConversation(%s, %s) = %v %v", c.user, c.remote, got, err)
			}
		}
		if in, err := tx.InConversationHubbedAt(ids["eve"], "b.example"); err != nil || !in {
			t.Fatalf("eve in a conversation hubbed at b: %v %v", in, err)
		}
		if in, err := tx.InConversationHubbedAt(ids["alice"], "b.example"); err != nil || in {
			t.Fatalf("alice in a conversation hubbed at b: %v %v", in, err)
		}
		return nil
	})

	mustWrite(t, db, func(tx *Tx) error {
		if err := tx.SetLastSeenVisibility(ids["bob"], LastSeenNobody); err != nil {
			return err
		}
		if err := tx.SetLastSeenMs(ids["bob"], 500); err != nil {
			return err
		}
		if err := tx.SetLastSeenMs(ids["bob"], 400); err != nil { // older: ignored
			return err
		}
		if tx.SetLastSeenVisibility(ids["bob"], 4) == nil {
			t.Error("visibility 4 stored")
		}
		return nil
	})
	read(func(tx *Tx) error {
		p, err := tx.PresenceSettings(ids["bob"])
		if err != nil || p.LastSeen != LastSeenNobody || p.LastSeenMs != 500 {
			t.Fatalf("bob's settings %+v %v", p, err)
		}
		peers, err := tx.PresencePeers(ids["alice"])
		if err != nil {
			return err
		}
		got := map[string]PresenceSettings{}
		for _, p := range peers {
			got[p.Name] = p.Settings
		}
		if len(got) != 2 || got["bob"] != p || got["alice"].LastSeen != LastSeenEveryone {
			t.Fatalf("alice's presence peers %+v", peers)
		}
		return nil
	})
	read(func(tx *Tx) error {
		h, err := tx.HidingLastSeen([]int64{ids["alice"], ids["bob"], ids["eve"], 9999})
		if err != nil || len(h) != 1 || !h[ids["bob"]] {
			t.Fatalf("HidingLastSeen %v %v, want bob only", h, err)
		}
		return nil
	})
	mustWrite(t, db, func(tx *Tx) error { return tx.DeleteUser(ids["bob"]) })
	read(func(tx *Tx) error {
		if p, err := tx.PresenceSettings(ids["bob"]); err != nil || p.LastSeenMs != 0 {
			t.Fatalf("a deleted user's settings %+v %v", p, err)
		}
		return nil
	})
}
