package client

import (
	"slices"

	"hearth/client/convstate"
	"hearth/client/store"
)

// GroupEntry is a group this device is in, as a conversations list shows
// it before any message: its id and name.
type GroupEntry struct {
	ID   string
	Name string
}

// GroupList returns the groups this device is a member of, sorted by id,
// without this user's settings group (its devices' own, never shown). It
// reads only the profile store.
func (c *Client) GroupList() ([]GroupEntry, error) {
	var out []GroupEntry
	err := c.st.View(func(tx *store.Tx) error {
		for _, id := range tx.MetaNames("conv/") {
			cv, err := convstate.Get(tx, id)
			if err != nil || !cv.Group || isSettingsGroup(tx, id) || tx.Meta(goneName(id)) != nil {
				continue
			}
			e := GroupEntry{ID: id}
			if m, ok, err := getGroupMeta(tx, id); err == nil && ok {
				e.Name = m.Name
			}
			out = append(out, e)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b GroupEntry) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, err
}
