package storage

import "testing"

// TestDeliverPrev: a DELIVER naming a skipped one as previous is sent
// naming the one before the skipped run, per conversation and destination;
// pruning below an accepted sequence forgets the run.
func TestDeliverPrev(t *testing.T) {
	db, _ := openTest(t)
	const conv, dest = "c@a.example", "b.example"
	mustWrite(t, db, func(tx *Tx) error {
		if has, err := tx.HasSkippedDelivers(dest); err != nil || has {
			t.Errorf("HasSkippedDelivers before any skip: %v, %v", has, err)
		}
		for _, s := range [][2]uint64{{5, 2}, {6, 5}, {9, 6}} {
			if err := tx.SkipDeliver(conv, dest, s[0], s[1]); err != nil {
				return err
			}
		}
		return tx.SkipDeliver(conv, "other.example", 12, 10)
	})
	mustWrite(t, db, func(tx *Tx) error {
		for _, c := range []struct {
			conv, dest string
			prev, want uint64
		}{
			{conv, dest, 9, 2}, {conv, dest, 6, 2}, {conv, dest, 5, 2}, {conv, dest, 2, 2},
			{conv, dest, 7, 7}, {conv, dest, 0, 0}, {conv, "other.example", 9, 9},
			{conv, "other.example", 12, 10}, {"d@a.example", dest, 9, 9},
		} {
			got, err := tx.DeliverPrev(c.conv, c.dest, c.prev)
			if err != nil || got != c.want {
				t.Errorf("DeliverPrev(%s, %s, %d) = %d, %v; want %d", c.conv, c.dest, c.prev, got, err, c.want)
			}
		}
		for d, want := range map[string]bool{dest: true, "other.example": true, "none.example": false} {
			if has, err := tx.HasSkippedDelivers(d); err != nil || has != want {
				t.Errorf("HasSkippedDelivers(%s) = %v, %v; want %v", d, has, err, want)
			}
		}
		if err := tx.PruneSkippedDelivers(conv, dest, 10); err != nil {
			return err
		}
		if has, err := tx.HasSkippedDelivers(dest); err != nil || has {
			t.Errorf("HasSkippedDelivers after pruning: %v, %v", has, err)
		}
		if got, err := tx.DeliverPrev(conv, dest, 9); err != nil || got != 9 {
			t.Errorf("after pruning: %d, %v", got, err)
		}
		if got, err := tx.DeliverPrev(conv, "other.example", 12); err != nil || got != 10 {
			t.Errorf("pruning another destination's run: %d, %v", got, err)
		}
		// A corrupt row naming a later DELIVER as previous is an error, not a loop.
		if err := tx.SkipDeliver(conv, dest, 20, 30); err != nil {
			return err
		}
		if _, err := tx.DeliverPrev(conv, dest, 20); err == nil {
			t.Error("a skipped DELIVER naming a later one as previous was followed")
		}
		return nil
	})
}
