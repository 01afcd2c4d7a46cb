package client

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/keys/identity"
)

// Heal test hooks for package client_test.

// RestoreGroupState puts a state taken earlier with GroupState back, and
// the conversation's peers as of that state, as a profile restored from a
// backup holds them.
func (c *Client) RestoreGroupState(t *testing.T, conv string, state []byte) {
	t.Helper()
	self := c.Self(t)
	err := c.st.Update(func(tx *store.Tx) error {
		g, err := c.mls.Load(state, nil, self, c.dir.Pinned())
		if err != nil {
			return err
		}
		// A backup holds the conversation's record as of that state.
		cv, err := convstate.Get(tx, conv)
		if err != nil {
			return err
		}
		cv.Peers = convstate.PeersOf(g.Members(), convstate.UserOf(self.Address))
		if err := convstate.Remember(tx, cv); err != nil {
			return err
		}
		return c.states.Save(tx, conv, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A device restored from a backup runs in a new process: nothing it
	// remembered in memory (here, that conv's roster was checked a moment
	// ago, by a receipt's send) holds for the restored state.
	c.rosters.Unsync(conv)
}

// OutOfStep returns conv's out-of-step record, if it is marked.
func (c *Client) OutOfStep(t *testing.T, conv string) (convstate.OutOfStep, bool) {
	t.Helper()
	var o convstate.OutOfStep
	var ok bool
	if err := c.st.View(func(tx *store.Tx) (err error) { o, ok, err = convstate.GetOutOfStep(tx, conv); return }); err != nil {
		t.Fatal(err)
	}
	return o, ok
}

// MarkOutOfStep marks conv out of step with cause, as the receiver does.
func (c *Client) MarkOutOfStep(t *testing.T, conv, cause string) {
	t.Helper()
	if err := c.st.Update(func(tx *store.Tx) error { return convstate.MarkOutOfStep(tx, conv, cause) }); err != nil {
		t.Fatal(err)
	}
}

// Gone reports whether this device holds conv as gone (removed or left).
func (c *Client) Gone(t *testing.T, conv string) bool {
	t.Helper()
	var gone bool
	c.st.View(func(tx *store.Tx) error { gone = tx.Meta(goneName(conv)) != nil; return nil })
	return gone
}

// PublishListWithout publishes this user's signed device list without
// the devices ids and nothing else: the conversations keep them until a
// member's roster check removes them.
func (c *Client) PublishListWithout(t *testing.T, ids ...string) {
	t.Helper()
	if _, err := c.acct.DropRevoked(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
}

// FetchList fetches and pins user's signed device list now.
func (c *Client) FetchList(t *testing.T, user string) {
	t.Helper()
	u, err := identity.ParseUser(user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.dir.Fetch(context.Background(), nil, u); err != nil {
		t.Fatal(err)
	}
}

// SetDomainUnreachable records domain as unreachable until until (in the
// store, as a failed fetch does), or clears that with a zero until: list
// fetches for its users fail at once meanwhile.
func (c *Client) SetDomainUnreachable(t *testing.T, domain string, until time.Time) {
	t.Helper()
	err := c.st.Update(func(tx *store.Tx) error {
		if until.IsZero() {
			return tx.DeleteMeta("unreachable/" + domain)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(until.UnixMilli()))
		return tx.PutMeta("unreachable/"+domain, b[:])
	})
	if err != nil {
		t.Fatal(err)
	}
}
