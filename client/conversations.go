package client

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"hearth/client/e2ee"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

func commitName(conv string) string   { return "commit/" + conv }
func externalName(conv string) string { return "external/" + conv }

// settleExternal ends an external join: accepted, the group (already in the
// new epoch) stays; refused, this device forgets the conversation and a
// later send looks again.
func settleExternal(tx *store.Tx, conv string, accepted bool) error {
	for _, name := range []string{commitName(conv), externalName(conv)} {
		if err := tx.DeleteMeta(name); err != nil {
			return err
		}
	}
	if accepted {
		return nil
	}
	c, err := getConversation(tx, conv)
	if err == nil && len(c.Peers) == 1 && string(tx.Meta(directName(c.Peers[0]))) == conv {
		if err := tx.DeleteMeta(directName(c.Peers[0])); err != nil {
			return err
		}
	}
	for _, name := range []string{convName(conv), "registered/" + conv} {
		if err := tx.DeleteMeta(name); err != nil {
			return err
		}
	}
	return tx.DeleteGroup(conv)
}

// errRedo is returned when the group moved on while a commit was prepared.
var errRedo = wire.Errorf("client.Commit", wire.Code_CODE_STALE_EPOCH, "group changed while preparing a commit")

// directConversation returns this device's 1:1 conversation with peer,
// joining the existing one by external commit when another device of this
// user already has one, or creating it here.
func (c *Client) directConversation(ctx context.Context, peer string) (string, error) {
	const op = "client.DirectConversation"
	pu, err := identity.ParseUser(peer)
	if err != nil {
		return "", wire.E(op, wire.Code_CODE_BAD_REQUEST, err)
	}
	peer = pu.String()
	var id string
	var registered bool
	c.st.View(func(tx *store.Tx) error {
		id, _ = conversationFor(tx, peer)
		registered = id != "" && tx.Meta("registered/"+id) != nil
		return nil
	})
	if id == "" {
		if id, err = c.joinExisting(ctx, peer); err != nil || id != "" {
			return id, err
		}
		if id, err = c.createGroup(ctx, peer); err != nil {
			return "", err
		}
	}
	if !registered {
		return id, c.register(ctx, id, peer)
	}
	return id, nil
}

// createGroup makes a new MLS group for a direct conversation with peer
// and stores it before the hub hears of it.
func (c *Client) createGroup(ctx context.Context, peer string) (string, error) {
	self, err := c.acct.Self()
	if err != nil {
		return "", err
	}
	local, err := c.newID()
	if err != nil {
		return "", err
	}
	su, err := identity.ParseUser(userOf(self.Address))
	if err != nil {
		return "", err
	}
	id := local[:20] + "@" + su.Domain
	err = c.st.Update(func(tx *store.Tx) error {
		g, err := c.mls.Create([]byte(id), self, c.dir.Members(ctx, tx), nil)
		if err != nil {
			return fmt.Errorf("client: create group: %w", err)
		}
		if err := c.saveGroup(tx, id, g); err != nil {
			return err
		}
		return c.rememberConversation(tx, conversation{ID: id, Peers: []string{peer}, Creator: su.String()})
	})
	return id, err
}

// register creates the conversation at the hub (this server). A conflict
// means an earlier run registered it already.
func (c *Client) register(ctx context.Context, id, peer string) error {
	_, err := c.call(ctx, "client.CreateConversation", &wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_DIRECT, Peers: []string{peer},
	}}})
	if err != nil && !wire.Is(err, wire.Code_CODE_CONFLICT) {
		return err
	}
	return c.st.Update(func(tx *store.Tx) error { return tx.PutMeta("registered/"+id, []byte{1}) })
}

// joinExisting looks for a direct conversation with peer that another
// device of this user is in, and joins it by external commit.
func (c *Client) joinExisting(ctx context.Context, peer string) (string, error) {
	r, err := c.callIdempotent(ctx, "client.ListConversations", &wire.ClientFrame{Body: &wire.ClientFrame_ListConversations{ListConversations: &wire.ListConversations{}}})
	if err != nil {
		return "", err
	}
	self, err := c.acct.Self()
	if err != nil {
		return "", err
	}
	for _, ci := range r.GetConversations().GetConversations() {
		peers := peersOf(ci.GetMembers(), userOf(self.Address))
		if ci.GetKind() != wire.ConversationKind_CONVERSATION_KIND_DIRECT || len(peers) != 1 || peers[0] != peer ||
			len(ci.GetGroupInfo()) == 0 || slices.Contains(ci.GetMembers(), self.Address) {
			continue
		}
		var req *wire.Send
		err := c.st.Update(func(tx *store.Tx) error {
			g, commit, err := c.mls.JoinExternal(ci.GetGroupInfo(), self, c.dir.Members(ctx, tx))
			if err != nil {
				return err
			}
			if err := c.saveGroup(tx, ci.GetConversationId(), g); err != nil {
				return err
			}
			if req, err = c.pendCommit(tx, ci.GetConversationId(), g.Epoch(), commit); err != nil {
				return err
			}
			if err := tx.PutMeta("registered/"+ci.GetConversationId(), []byte{1}); err != nil {
				return err
			}
			if err := tx.PutMeta(externalName(ci.GetConversationId()), []byte{1}); err != nil {
				return err
			}
			return c.rememberConversation(tx, conversation{ID: ci.GetConversationId(), Peers: peers, Creator: ci.GetCreator()})
		})
		if err != nil {
			c.log.Warn("external join failed", "conversation", ci.GetConversationId(), "err", err)
			continue
		}
		err = c.finishCommit(ctx, ci.GetConversationId(), req)
		if err == nil || session.Retryable(err) {
			return ci.GetConversationId(), err
		}
		c.log.Warn("external join refused", "conversation", ci.GetConversationId(), "err", err)
	}
	return "", nil
}

// pendCommit records the request carrying a pending commit, so that it is
// resent under the same message id if the answer is lost.
func (c *Client) pendCommit(tx *store.Tx, conv string, epoch uint64, cm e2ee.Commit) (*wire.Send, error) {
	id, err := c.newID()
	if err != nil {
		return nil, err
	}
	req := &wire.Send{
		ConversationId: conv, MessageId: id, Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Epoch: epoch,
		Payload: cm.Message, AddDevices: cm.Added, RemoveDevices: cm.Removed, Welcome: cm.Welcome, GroupInfo: cm.GroupInfo,
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	return req, tx.PutMeta(commitName(conv), raw)
}

// finishCommit sends a pending commit; the hub's answer decides whether
// the group merges it or drops it.
func (c *Client) finishCommit(ctx context.Context, conv string, req *wire.Send) error {
	_, err := c.call(ctx, "client.Commit", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: req}})
	if err != nil && session.Retryable(err) && !wire.Is(err, wire.Code_CODE_STALE_EPOCH) {
		return err // unknown outcome: resend the same request later
	}
	self, serr := c.acct.Self()
	if serr != nil {
		return serr
	}
	uerr := c.st.Update(func(tx *store.Tx) error {
		if tx.Meta(commitName(conv)) == nil {
			return nil // already settled from a delivery (settlePending)
		}
		if tx.Meta(externalName(conv)) != nil {
			return settleExternal(tx, conv, err == nil)
		}
		g, lerr := c.loadGroup(tx, conv, self, c.dir.Members(ctx, tx))
		if lerr != nil {
			return lerr
		}
		if err == nil {
			if merr := g.MergeCommit(); merr != nil {
				return fmt.Errorf("client: merge commit: %w", merr)
			}
			if cv, cerr := getConversation(tx, conv); cerr == nil && cv.Group {
				if perr := c.updatePeers(tx, conv, g.Members(), self); perr != nil {
					return perr
				}
			}
		} else {
			g.DiscardCommit()
		}
		if serr := c.saveGroup(tx, conv, g); serr != nil {
			return serr
		}
		return tx.DeleteMeta(commitName(conv))
	})
	if uerr != nil {
		return uerr
	}
	return err
}

// reconcile brings the group's members in line with the signed device
// lists of its users: devices added since are added, devices no longer
// listed (revoked) are removed, in one commit accepted by the hub.
func (c *Client) reconcile(ctx context.Context, conv string) error {
	self, err := c.acct.Self()
	if err != nil {
		return err
	}
	var pending []byte
	var meta conversation
	var members []string
	var epoch uint64
	err = c.st.Update(func(tx *store.Tx) error {
		pending = tx.Meta(commitName(conv))
		if meta, err = getConversation(tx, conv); err != nil {
			return fmt.Errorf("client: conversation %s: %w", conv, err)
		}
		return c.viewGroup(tx, conv, self, c.dir.Members(ctx, tx), func(g e2ee.Group) error {
			members, epoch = g.Members(), g.Epoch()
			return nil
		})
	})
	if err != nil {
		return err
	}
	if pending != nil {
		req := new(wire.Send)
		if err := proto.Unmarshal(pending, req); err != nil {
			return fmt.Errorf("client: stored commit for %s: %w", conv, err)
		}
		if err := c.finishCommit(ctx, conv, req); err != nil {
			return err
		}
		return errRedo // membership changed: look again with the new state
	}
	peers := meta.Peers
	if meta.Group {
		peers = peersOf(members, userOf(self.Address))
	}
	add, remove, err := c.rosterDiff(ctx, userOf(self.Address), peers, members)
	if err != nil {
		return err
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	kps, err := c.claim(ctx, add, members)
	if err != nil {
		return err
	}
	if len(kps) == 0 && len(remove) == 0 {
		return nil
	}
	var req *wire.Send
	err = c.st.Update(func(tx *store.Tx) error {
		g, err := c.loadGroup(tx, conv, self, c.dir.Members(ctx, tx))
		if err != nil {
			return err
		}
		if g.Epoch() != epoch {
			return errRedo
		}
		cm, err := g.Commit(kps, remove)
		if err != nil {
			return fmt.Errorf("client: commit: %w", err)
		}
		if err := c.saveGroup(tx, conv, g); err != nil {
			return err
		}
		req, err = c.pendCommit(tx, conv, epoch, cm)
		return err
	})
	if err != nil {
		return err
	}
	return c.finishCommit(ctx, conv, req)
}

// rosterDiff compares members with the devices on the signed lists of the
// conversation's users.
func (c *Client) rosterDiff(ctx context.Context, me string, peers, members []string) (add map[string][]string, remove []string, err error) {
	want := map[string]bool{}
	add = map[string][]string{}
	users := append([]string{me}, peers...)
	addrs := make([]identity.UserAddress, len(users))
	for i, u := range users {
		if addrs[i], err = identity.ParseUser(u); err != nil {
			return nil, nil, err
		}
	}
	// One round trip per 256 users; a user the batch did not answer (or
	// every user, when the batch failed) is asked on its own, for the
	// server's reason.
	lists, berr := c.dir.FetchMany(ctx, nil, addrs)
	if berr != nil && !session.Retryable(berr) {
		return nil, nil, berr
	}
	isMember := make(map[string]bool, len(members))
	for _, m := range members {
		isMember[m] = true
	}
	for i, u := range users {
		l, ok := lists[addrs[i]]
		var err error
		if !ok {
			l, err = c.dir.Fetch(ctx, nil, addrs[i])
		}
		if err != nil {
			// A peer whose server cannot be reached now keeps the devices it
			// already has in the conversation: the message still goes to the
			// hub, which queues it for that server. With none, nothing can
			// be sent to that user, so the error stands.
			kept := devicesOf(members, u)
			if len(kept) == 0 || !session.Retryable(err) {
				return nil, nil, err
			}
			c.log.Warn("device list unavailable; keeping the user's current devices", "user", u, "err", err)
			for _, m := range kept {
				want[m] = true
			}
			continue
		}
		for _, d := range l.Devices {
			addr := u + "/" + d.DeviceID
			want[addr] = true
			if !isMember[addr] {
				add[u] = append(add[u], addr)
			}
		}
	}
	for _, m := range members {
		if !want[m] {
			remove = append(remove, m)
		}
	}
	return add, remove, nil
}

// devicesOf returns the members that are devices of user u.
func devicesOf(members []string, u string) []string {
	var out []string
	for _, m := range members {
		if strings.HasPrefix(m, u+"/") {
			out = append(out, m)
		}
	}
	return out
}

// claim fetches one KeyPackage for each device in add. Devices that have
// none left are left out (they join when they publish new ones).
func (c *Client) claim(ctx context.Context, add map[string][]string, members []string) ([][]byte, error) {
	kps, _, err := c.claimUsers(ctx, add, members)
	return kps, err
}

// maxClaimUsers is the most users one ClaimKeyPackages may name.
const maxClaimUsers = 64

// claimUsers is claim that also says which users got at least one package.
func (c *Client) claimUsers(ctx context.Context, add map[string][]string, members []string) ([][]byte, map[string]bool, error) {
	got := map[string]bool{}
	if len(add) == 0 {
		return nil, got, nil
	}
	var users []string
	for u := range add {
		users = append(users, u)
	}
	slices.Sort(users)
	var kps [][]byte
	for len(users) > 0 {
		n := min(len(users), maxClaimUsers) // the server's limit per claim
		chunk := users[:n]
		users = users[n:]
		var exclude []string // only devices of these users matter
		for _, m := range members {
			if slices.Contains(chunk, userOf(m)) {
				exclude = append(exclude, m)
			}
		}
		r, err := c.call(ctx, "client.ClaimKeyPackages", &wire.ClientFrame{Body: &wire.ClientFrame_ClaimKeyPackages{ClaimKeyPackages: &wire.ClaimKeyPackages{
			Users: chunk, ExcludeDevices: exclude,
		}}})
		if wire.Is(err, wire.Code_CODE_NO_KEY_PACKAGES) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, p := range r.GetClaim().GetPackages() {
			if slices.Contains(add[p.GetUser()], p.GetUser()+"/"+p.GetDeviceId()) {
				kps = append(kps, p.GetKeyPackage())
				got[p.GetUser()] = true
			}
		}
	}
	return kps, got, nil
}
