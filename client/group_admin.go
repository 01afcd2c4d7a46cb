package client

import (
	"context"
	"encoding/json"
	"slices"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// Rename sets the group's name (admins only).
func (gp *Groups) Rename(ctx context.Context, conv, name string) error {
	if name == "" {
		return wire.Errorf("client.RenameGroup", wire.Code_CODE_BAD_REQUEST, "a group name must not be empty")
	}
	if err := gp.requireAdmin(ctx, conv, ""); err != nil {
		return err
	}
	return gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: "rename", Arg: name})
}

// Promote makes user an admin: its devices get the admin key, sealed to
// each device's leaf key (admins only).
func (gp *Groups) Promote(ctx context.Context, conv, user string) error {
	u, err := identity.NormalizeUser(user)
	if err != nil {
		return wire.E("client.Promote", wire.Code_CODE_BAD_REQUEST, err)
	}
	if err := gp.requireAdmin(ctx, conv, u.String()); err != nil {
		return err
	}
	return gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: "promote", Arg: u.String()})
}

// Demote takes the admin role from user: the admin key is rotated in an
// admin-signed commit and the new key given to the remaining admins.
func (gp *Groups) Demote(ctx context.Context, conv, user string) error {
	const op = "client.Demote"
	u, err := identity.NormalizeUser(user)
	if err != nil {
		return wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	if err := gp.requireAdmin(ctx, conv, u.String()); err != nil {
		return err
	}
	var admins []string
	gp.st.View(func(tx *store.Tx) error {
		meta, _, _ := getGroupMeta(tx, conv)
		admins = meta.Admins
		return nil
	})
	if !slices.Contains(admins, u.String()) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s is not an admin of %s", u, conv)
	}
	if len(admins) == 1 {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s is the last admin of %s; promote someone first", u, conv)
	}
	return gp.removeUsers(ctx, conv, nil, u.String(), true)
}

// requireAdmin catches up and checks this device holds the admin key of
// conv and, if member is set, that member is in the group.
func (gp *Groups) requireAdmin(ctx context.Context, conv, member string) error {
	if _, err := gp.groupReady(ctx); err != nil {
		return err
	}
	if err := gp.inStep(ctx, conv); err != nil {
		return err
	}
	self, err := gp.acct.Self()
	if err != nil {
		return err
	}
	return gp.st.View(func(tx *store.Tx) error {
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		if meta.AdminSeed == nil {
			return notAdmin(conv)
		}
		if member != "" && !slices.Contains(convstate.UsersOf(g.Members()), member) {
			return wire.Errorf("client.Group", wire.Code_CODE_NOT_MEMBER, "%s is not a member of %s", member, conv)
		}
		return nil
	})
}

// Leave leaves conv with all of this user's devices. The last admin
// first promotes another member. A device cannot commit its own removal,
// so the leave is a request the admins' devices commit; this device
// forgets the group once the request is accepted by the hub.
func (gp *Groups) Leave(ctx context.Context, conv string) error {
	if _, err := gp.groupReady(ctx); err != nil {
		return err
	}
	if err := gp.inStep(ctx, conv); err != nil {
		return err
	}
	self, err := gp.acct.Self()
	if err != nil {
		return err
	}
	me := convstate.UserOf(self.Address)
	var heir string
	err = gp.st.View(func(tx *store.Tx) error {
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		others := slices.DeleteFunc(convstate.UsersOf(g.Members()), func(u string) bool { return u == me })
		if meta.AdminSeed != nil && len(others) > 0 && !slices.ContainsFunc(meta.Admins, func(a string) bool { return a != me && slices.Contains(others, a) }) {
			heir = others[0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if heir != "" {
		if err := gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: "promote", Arg: heir}); err != nil {
			return err
		}
	}
	return gp.sendControl(ctx, conv, control{Type: ctlLeave})
}

const leaversName = "group-leavers"

// markLeavers records (or clears) that conv has leave requests to commit.
func markLeavers(tx *store.Tx, conv string, pending bool) error {
	var convs []string
	if raw := tx.Meta(leaversName); raw != nil {
		if err := json.Unmarshal(raw, &convs); err != nil {
			return err
		}
	}
	has := slices.Contains(convs, conv)
	switch {
	case pending && !has:
		convs = append(convs, conv)
	case !pending && has:
		convs = slices.DeleteFunc(convs, func(x string) bool { return x == conv })
	default:
		return nil
	}
	raw, err := json.Marshal(convs)
	if err != nil {
		return err
	}
	return tx.PutMeta(leaversName, raw)
}

// commitLeaves removes, in every group where this device is an admin, the
// users who asked to leave (rotating the admin key if one was an admin).
func (gp *Groups) commitLeaves(ctx context.Context) error {
	var convs []string
	// A Peek (every Flush comes here): metadata only, which no write put
	// off by Store.Later touches (keyPackages.ensure).
	err := gp.st.Peek(func(tx *store.Tx) (err error) { convs, err = leaversIn(tx); return })
	if err != nil {
		return err
	}
	return gp.commitLeavesOf(ctx, convs)
}

// leaversIn reads, in tx, the groups with leave requests to commit.
func leaversIn(tx *store.Tx) ([]string, error) {
	var convs []string
	if raw := tx.Meta(leaversName); raw != nil {
		if err := json.Unmarshal(raw, &convs); err != nil {
			return nil, err
		}
	}
	return convs, nil
}

// commitLeavesOf is commitLeaves for the groups leaversIn read.
func (gp *Groups) commitLeavesOf(ctx context.Context, convs []string) error {
	for _, conv := range convs {
		var leaving []string
		var admin bool
		gp.st.View(func(tx *store.Tx) error {
			meta, _, _ := getGroupMeta(tx, conv)
			leaving, admin = meta.Leaving, meta.AdminSeed != nil
			return nil
		})
		if !admin {
			continue // an admin's device commits it
		}
		if len(leaving) > 0 {
			if err := gp.removeUsers(ctx, conv, leaving, "", false); err != nil && !wire.Is(err, wire.Code_CODE_NOT_FOUND) {
				return err
			}
		}
		err := gp.st.Update(func(tx *store.Tx) error {
			meta, ok, err := getGroupMeta(tx, conv)
			if err != nil {
				return err
			}
			if ok {
				meta.Leaving = nil
				if err := putGroupMeta(tx, conv, meta); err != nil {
					return err
				}
			}
			return markLeavers(tx, conv, false)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
