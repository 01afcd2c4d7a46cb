package client

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"hearth/client/convstate"
	"hearth/client/e2ee"
	"hearth/client/roster"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/groupauth"
	"hearth/keys/identity"
)

// Info is this device's view of a group.
type GroupInfo struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Description        string   `json:"description,omitempty"`
	Members            []string `json:"members"` // users, sorted
	Devices            []string `json:"devices"` // member devices, sorted
	Admins             []string `json:"admins"`
	Epoch              uint64   `json:"epoch"`
	EpochAuthenticator string   `json:"epoch_authenticator"` // hex; equal on every member in the same epoch
	Admin              bool     `json:"admin"`               // this device holds the group admin key
}

// groupReady is what every group operation needs: an approved device, a
// session caught up with the mailbox.
func (gp *Groups) groupReady(ctx context.Context) (*session.Session, error) {
	if !gp.e2ee {
		return nil, fmt.Errorf("client.Group: %w", ErrNoE2EE)
	}
	a, err := gp.acct.Account()
	if err != nil {
		return nil, err
	}
	if !a.Active {
		return nil, wire.Errorf("client.Group", wire.Code_CODE_PENDING_APPROVAL, "this device is not approved yet")
	}
	s, err := gp.session(ctx)
	if err != nil {
		return nil, err
	}
	if err := gp.ensureKeyPackages(ctx); err != nil {
		return nil, err
	}
	return s, gp.resync(ctx, s)
}

func (gp *Groups) resync(ctx context.Context, s *session.Session) error {
	for {
		err := s.Resync(ctx)
		if err == nil || ctx.Err() != nil || !session.Retryable(err) {
			return err
		}
	}
}

func unknownGroup(conv string) error {
	return wire.Errorf("client.Group", wire.Code_CODE_NOT_FOUND, "unknown group %s (not a member here)", conv)
}

// groupState loads a group's MLS state and metadata.
func (gp *Groups) groupState(ctx context.Context, tx *store.Tx, conv string, self e2ee.Self) (e2ee.Group, groupMeta, error) {
	cv, err := convstate.Get(tx, conv)
	if err != nil || !cv.Group {
		if tx.Meta(goneName(conv)) != nil {
			return nil, groupMeta{}, notMemberAnymore(conv)
		}
		return nil, groupMeta{}, unknownGroup(conv)
	}
	meta, _, err := getGroupMeta(tx, conv)
	if err != nil {
		return nil, meta, err
	}
	g, err := gp.states.Load(tx, conv, self, gp.dir.Members(ctx, tx))
	if err != nil {
		return nil, meta, err
	}
	return g, meta, nil
}

// Create creates a group named name with this user as its admin, adds
// every device of members and this user's other devices, and returns its id.
func (gp *Groups) Create(ctx context.Context, name string, members []string) (string, error) {
	const op = "client.CreateGroup"
	if _, err := gp.groupReady(ctx); err != nil {
		return "", err
	}
	self, err := gp.acct.Self()
	if err != nil {
		return "", err
	}
	me := convstate.UserOf(self.Address)
	var users []string
	for _, m := range members {
		u, err := identity.NormalizeUser(m)
		if err != nil {
			return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
		}
		if s := u.String(); s != me && !slices.Contains(users, s) {
			users = append(users, s)
		}
	}
	local, err := gp.newID()
	if err != nil {
		return "", err
	}
	su, _ := identity.ParseUser(me)
	id := local[:20] + "@" + su.Domain
	pub, seed, err := ed25519.GenerateKey(gp.rand)
	if err != nil {
		return "", err
	}
	var gi []byte // epoch 0's GroupInfo: the hub starts the public state from it
	err = gp.st.Update(func(tx *store.Tx) error {
		g, err := gp.mls.Create([]byte(id), self, gp.dir.Members(ctx, tx), pub)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if gi, err = g.GroupInfo(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := gp.states.Save(tx, id, g); err != nil {
			return err
		}
		meta := groupMeta{Name: name, Admins: []string{me}, AdminSeed: seed.Seed()}
		if err := putGroupMeta(tx, id, meta); err != nil {
			return err
		}
		return convstate.Remember(tx, convstate.Conversation{ID: id, Creator: me, Group: true})
	})
	if err != nil {
		return "", err
	}
	if _, err := gp.call(ctx, op, &wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP, GroupInfo: gi,
	}}}); err != nil {
		return id, err
	}
	if err := gp.st.Update(func(tx *store.Tx) error { return tx.PutMeta(convstate.RegisteredName(id), []byte{1}) }); err != nil {
		return id, err
	}
	if err := gp.addUsers(ctx, id, append([]string{me}, users...)); err != nil {
		return id, err
	}
	return id, gp.sendControl(ctx, id, control{Type: ctlMeta, Op: "sync"})
}

// AddMembers adds every device of users to the group (admins only).
func (gp *Groups) AddMembers(ctx context.Context, conv string, users []string) error {
	if _, err := gp.groupReady(ctx); err != nil {
		return err
	}
	var norm []string
	for _, u := range users {
		ua, err := identity.NormalizeUser(u)
		if err != nil {
			return wire.E("client.AddMembers", wire.Code_CODE_BAD_REQUEST, err)
		}
		norm = append(norm, ua.String())
	}
	if err := gp.addUsers(ctx, conv, norm); err != nil {
		return err
	}
	// The new members learn the name and the admins (and admins' new
	// devices the admin key) from a fresh state message.
	return gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: "sync"})
}

// maxUsersPerCommit is how many users one commit adds at most. On the
// default suite a commit adding 256 single-device users to a 1,024-device
// group is about 1 MB with its Welcome, plus the GroupInfo (the ratchet
// tree, 1.4-2.7 MB): under the hub's default max_commit_bytes (6 MiB)
// with room for users with several devices (docs/decisions/0004).
const maxUsersPerCommit = 256

// addUsers commits the addition of every device of users not yet in the
// group, at most maxUsersPerCommit users per commit. A commit the hub
// still refuses as too large is split in two halves (each carries fewer
// KeyPackages and Welcome secrets; see docs/groups.md).
func (gp *Groups) addUsers(ctx context.Context, conv string, users []string) error {
	check := true // the roster check runs once, before the first commit
	for chunk := range slices.Chunk(users, maxUsersPerCommit) {
		if err := gp.addUsersCommit(ctx, conv, chunk, check); err != nil {
			return err
		}
		check = false
	}
	// The roster was checked at the start of this operation and the added
	// users' devices come from lists just fetched: the state message that
	// follows need not check again (one list per member user).
	if !check {
		gp.rosters.MarkSynced(conv)
	}
	return nil
}

func (gp *Groups) addUsersCommit(ctx context.Context, conv string, users []string, check bool) error {
	err := gp.groupCommit(ctx, conv, check, func(g e2ee.Group, meta groupMeta, self e2ee.Self) (commitPlan, error) {
		if meta.AdminSeed == nil {
			return commitPlan{}, notAdmin(conv)
		}
		return commitPlan{addUsers: users}, nil
	})
	if wire.Is(err, wire.Code_CODE_TOO_LARGE) && len(users) > 1 {
		gp.log.Debug("commit too large; adding in two halves", "conversation", conv, "users", len(users))
		h := len(users) / 2
		if err := gp.addUsersCommit(ctx, conv, users[:h], check); err != nil {
			return err
		}
		return gp.addUsersCommit(ctx, conv, users[h:], false)
	}
	return err
}

// RemoveMembers removes every device of users (admins only). Removing an
// admin rotates the group admin key.
func (gp *Groups) RemoveMembers(ctx context.Context, conv string, users []string) error {
	if _, err := gp.groupReady(ctx); err != nil {
		return err
	}
	var norm []string
	for _, u := range users {
		ua, err := identity.NormalizeUser(u)
		if err != nil {
			return wire.E("client.RemoveMembers", wire.Code_CODE_BAD_REQUEST, err)
		}
		norm = append(norm, ua.String())
	}
	return gp.removeUsers(ctx, conv, norm, "", true)
}

// removeUsers removes users' devices, and with demote (a user) or when an
// admin is removed, rotates the admin key and sends the new state.
func (gp *Groups) removeUsers(ctx context.Context, conv string, users []string, demote string, strict bool) error {
	rotated := false
	err := gp.groupCommit(ctx, conv, true, func(g e2ee.Group, meta groupMeta, self e2ee.Self) (commitPlan, error) {
		if meta.AdminSeed == nil {
			return commitPlan{}, notAdmin(conv)
		}
		members := g.Members()
		p := commitPlan{rotate: demote != ""}
		for _, u := range users {
			if u == convstate.UserOf(self.Address) {
				return p, wire.Errorf("client.RemoveMembers", wire.Code_CODE_BAD_REQUEST, "use leave to leave a group")
			}
			found := false
			for _, m := range members {
				if convstate.UserOf(m) == u {
					p.remove, found = append(p.remove, m), true
				}
			}
			if !found && strict {
				return p, wire.Errorf("client.RemoveMembers", wire.Code_CODE_NOT_MEMBER, "%s is not a member of %s", u, conv)
			}
			if found && slices.Contains(meta.Admins, u) {
				p.rotate = true
			}
		}
		rotated = p.rotate
		return p, nil
	})
	if err != nil || !rotated {
		return err
	}
	op := "sync"
	if demote != "" {
		op = "demote"
	}
	return gp.sendControl(ctx, conv, control{Type: ctlMeta, Op: op, Arg: demote})
}

// commitPlan is one admin commit: users whose devices to add, devices to
// remove, whether to rotate the admin key.
type commitPlan struct {
	addUsers []string
	remove   []string
	rotate   bool
}

// groupCommit makes the commit plan returns on the group's current epoch,
// signed with the admin key when it holds one. A commit that loses the
// epoch to another member's is discarded, that commit processed and the
// plan made again on the new epoch, until it is accepted. With
// checkRoster the group's roster is first brought in line with its users'
// device lists (reconcile, one list per member user); without it, only a
// pending commit is settled: the later commits of one chunked add, whose
// first commit checked.
func (gp *Groups) groupCommit(ctx context.Context, conv string, checkRoster bool, plan func(e2ee.Group, groupMeta, e2ee.Self) (commitPlan, error)) error {
	s, err := gp.session(ctx)
	if err != nil {
		return err
	}
	self, err := gp.acct.Self()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := gp.tryGroupCommit(ctx, conv, self, checkRoster, plan)
		if err == nil || (!wire.Is(err, wire.Code_CODE_STALE_EPOCH) && !isRedo(err)) || attempt == 50 {
			return err
		}
		gp.log.Debug("group commit lost the epoch; catching up and retrying", "conversation", conv, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.Backoff(min(attempt, 3)) / 4):
		}
		if err := gp.resync(ctx, s); err != nil {
			return err
		}
	}
}

func isRedo(err error) bool { return err == convstate.ErrRedo }

func (gp *Groups) tryGroupCommit(ctx context.Context, conv string, self e2ee.Self, checkRoster bool, plan func(e2ee.Group, groupMeta, e2ee.Self) (commitPlan, error)) error {
	if err := gp.inStep(ctx, conv); err != nil {
		return err
	}
	if err := gp.rosters.Settle(ctx, conv, checkRoster); err != nil {
		return err
	}
	var p commitPlan
	var members []string
	var epoch uint64
	err := gp.st.View(func(tx *store.Tx) error {
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		members, epoch = g.Members(), g.Epoch()
		p, err = plan(g, meta, self)
		return err
	})
	if err != nil {
		return err
	}
	add, err := gp.rosters.DevicesToAdd(ctx, p.addUsers, members)
	if err != nil {
		return err
	}
	kps, got, err := gp.rosters.ClaimUsers(ctx, add, members)
	if err != nil {
		return err
	}
	if err := roster.ClaimedAll(add, got, convstate.UserOf(self.Address)); err != nil {
		return err
	}
	if len(kps) == 0 && len(p.remove) == 0 && !p.rotate {
		return nil
	}
	var newPub ed25519.PublicKey
	var newSeed ed25519.PrivateKey
	if p.rotate {
		if newPub, newSeed, err = ed25519.GenerateKey(gp.rand); err != nil {
			return err
		}
	}
	var req *wire.Send
	err = gp.st.Update(func(tx *store.Tx) error {
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		if g.Epoch() != epoch || tx.Meta(convstate.CommitName(conv)) != nil {
			return convstate.ErrRedo // moved on, or another commit of this process is pending
		}
		ac := e2ee.AdminCommit{KeyPackages: kps, Remove: p.remove, SetAdminKey: p.rotate, NewAdminKey: newPub}
		if meta.AdminSeed != nil {
			key := ed25519.NewKeyFromSeed(meta.AdminSeed)
			ac.Sign = func(e uint64, ch groupauth.Change) []byte { return groupauth.Sign(key, conv, e, ch) }
		}
		cm, err := g.CommitAdmin(ac)
		if err != nil {
			return fmt.Errorf("client: commit: %w", err)
		}
		if err := gp.states.Save(tx, conv, g); err != nil {
			return err
		}
		if p.rotate {
			if err := tx.PutMeta(seedName(conv), newSeed.Seed()); err != nil {
				return err
			}
		}
		req, err = gp.rosters.PendCommit(tx, conv, epoch, cm)
		return err
	})
	if err != nil {
		return err
	}
	if err := gp.rosters.FinishCommit(ctx, conv, req); err != nil {
		return err
	}
	return gp.adoptSeed(ctx, conv, self)
}

func seedName(conv string) string { return "gseed/" + conv }

// adoptSeed makes a rotated admin key this device's once the commit that
// installed it is merged.
func (gp *Groups) adoptSeed(ctx context.Context, conv string, self e2ee.Self) error {
	return gp.st.Update(func(tx *store.Tx) error {
		seed := tx.Meta(seedName(conv))
		if seed == nil {
			return nil
		}
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		if string(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)) == string(g.AdminKey()) {
			meta.AdminSeed = slices.Clone(seed)
			if err := putGroupMeta(tx, conv, meta); err != nil {
				return err
			}
		}
		return tx.DeleteMeta(seedName(conv))
	})
}

// sendControl queues a control message for conv and sends it.
func (gp *Groups) sendControl(ctx context.Context, conv string, ctl control) error {
	raw, err := json.Marshal(ctl)
	if err != nil {
		return err
	}
	id, err := gp.newID()
	if err != nil {
		return err
	}
	err = gp.st.Update(func(tx *store.Tx) error {
		_, err := tx.AddOutbox(store.OutboxItem{ID: id, To: conv, Conversation: conv, Control: raw, Created: gp.now().UTC()})
		return err
	})
	if err != nil {
		return err
	}
	return gp.flush(ctx, id)
}

// controlSent finishes an accepted control message: a leave forgets the group.
func (gp *Groups) controlSent(it store.OutboxItem) error {
	var ctl control
	_ = json.Unmarshal(it.Control, &ctl)
	return gp.st.Update(func(tx *store.Tx) error {
		if err := tx.DeleteOutbox(it.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if ctl.Type == ctlLeave {
			return forgetConversation(tx, it.Conversation)
		}
		return nil
	})
}

// Info returns this device's view of group conv, after catching up with
// the mailbox when the server is reachable.
func (gp *Groups) Info(ctx context.Context, conv string) (GroupInfo, error) {
	// Catch up if the server answers soon; otherwise show what this
	// device holds.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := gp.groupReady(sctx)
	cancel()
	if err != nil && !session.Retryable(err) && sctx.Err() == nil {
		return GroupInfo{}, err
	}
	self, err := gp.acct.Self()
	if err != nil {
		return GroupInfo{}, err
	}
	var gi GroupInfo
	err = gp.st.View(func(tx *store.Tx) error {
		g, meta, err := gp.groupState(ctx, tx, conv, self)
		if err != nil {
			return err
		}
		devs := g.Members()
		slices.Sort(devs)
		admins := slices.Clone(meta.Admins)
		slices.Sort(admins)
		gi = GroupInfo{ID: conv, Name: meta.Name, Description: meta.Description, Members: convstate.UsersOf(devs), Devices: devs,
			Admins: admins, Epoch: g.Epoch(), EpochAuthenticator: hex.EncodeToString(g.EpochAuthenticator()), Admin: meta.AdminSeed != nil}
		if gi.Admins == nil {
			gi.Admins = []string{}
		}
		return nil
	})
	return gi, err
}
