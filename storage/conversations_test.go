package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestConversationForSend: one statement gives the conversation, the
// sender's membership and the members on other servers.
func TestConversationForSend(t *testing.T) {
	db, _ := openTest(t)
	ids := fixture(t, db, "c", 2)
	remote := []string{"r@other.example/D1", "s@third.example/D2"}
	mustWrite(t, db, func(tx *Tx) error {
		for _, a := range remote {
			if err := tx.AddMember("c@x", Member{Address: a}, 1); err != nil {
				return err
			}
		}
		return nil
	})
	err := db.Read(context.Background(), func(tx *Tx) error {
		for _, tc := range []struct {
			sender string
			remote bool
			member bool
			others int
		}{
			{"u@x/" + ids[0], true, true, 2},
			{"u@x/" + ids[1], false, true, 0},
			{"u@x/NOPE", true, false, 2},
			{"u@x/NOPE", false, false, 0},
			{remote[0], true, true, 2},
		} {
			c, member, others, err := tx.ConversationForSend("c@x", tc.sender, tc.remote)
			if err != nil {
				return err
			}
			if c.ID != "c@x" || c.Creator != "u@x/"+ids[0] || member != tc.member || len(others) != tc.others {
				return fmt.Errorf("%s (remote %v): %+v member %v others %v", tc.sender, tc.remote, c, member, others)
			}
			for i, o := range others {
				if o.Address != remote[i] && o.Address != remote[1-i] || o.DeviceID != "" {
					return fmt.Errorf("remote member %+v", o)
				}
			}
		}
		if _, _, _, err := tx.ConversationForSend("none@x", "u@x/"+ids[0], true); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("no conversation: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
