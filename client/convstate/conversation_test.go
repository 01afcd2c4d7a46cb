package convstate_test

import (
	"slices"
	"testing"
	"time"

	"hearth/client/convstate"
	"hearth/client/store"
)

// TestDirectConverges: two devices that start a 1:1 with each other at the
// same time make two direct conversations; whichever order a device learns
// of them in (its own first, then the peer's Welcome, or the reverse), it
// sends to the one with the smaller id, and keeps both for history
// (decision 0007). Forgetting the one it sends to falls back to the other.
func TestDirectConverges(t *testing.T) {
	const peer = "bob@a.example"
	small := convstate.Conversation{ID: "1111@a.example", Peers: []string{peer}}
	big := convstate.Conversation{ID: "9999@a.example", Peers: []string{peer}}
	group := convstate.Conversation{ID: "0000@a.example", Peers: []string{peer}, Group: true}
	for _, order := range [][]convstate.Conversation{{small, big}, {big, small}} {
		st, err := store.Open(t.TempDir(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		err = st.Update(func(tx *store.Tx) error {
			for _, cv := range append([]convstate.Conversation{group}, order...) {
				if err := convstate.Remember(tx, cv); err != nil {
					return err
				}
			}
			if id, _ := convstate.For(tx, peer); id != small.ID {
				t.Errorf("order %s, %s: sends go to %s, want %s", order[0].ID, order[1].ID, id, small.ID)
			}
			if got := convstate.Directs(tx, peer); !slices.Equal(got, []string{big.ID, small.ID}) {
				t.Errorf("Directs = %v, want the other one then the one sent to", got)
			}
			if err := convstate.Forget(tx, small.ID); err != nil {
				return err
			}
			if id, _ := convstate.For(tx, peer); id != big.ID {
				t.Errorf("after forgetting %s, sends go to %q, want %s", small.ID, id, big.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
