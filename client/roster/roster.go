package roster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/client/convstate"
	"hearth/client/directory"
	"hearth/client/e2ee"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// CallFunc sends one request over the device's session.
type CallFunc func(ctx context.Context, op string, f *wire.ClientFrame) (*wire.ServerFrame, error)

// Config is what a Roster needs.
type Config struct {
	Store  *store.Store
	States convstate.States
	Dir    *directory.Directory
	Self   func() (e2ee.Self, error)
	Call   CallFunc
	NewID  func() (string, error) // message ids of commits
	// Added, if set, runs in the transaction that merges this device's
	// accepted commit adding devices to group conv.
	Added func(tx *store.Tx, conv string) error
	Log   *slog.Logger
	Now   func() time.Time

	// Held, if set, refuses in tx a commit to conv: the conversation has
	// deliveries not processed yet (parked until a device list can be
	// fetched), and a commit on its current epoch would conflict with one
	// the hub already accepted.
	Held func(tx *store.Tx, conv string) error
}

// Roster keeps conversations' MLS rosters in line with their users'
// signed device lists, and drives this device's commits to the hub.
type Roster struct {
	cfg Config

	mu sync.Mutex
	// synced: when each conversation's roster was last compared with its
	// users' signed device lists (one list fetch per member user), so
	// that a send to a big group does not refetch them all every time.
	synced map[string]time.Time
	// reconciling holds a *sync.Mutex per conversation: one Reconcile of
	// a conversation at a time in this process (a send's, a receipt's in
	// the background, reconcileAll's), so that two never build commits for
	// the same epoch and the second fails with "a commit is already
	// pending"; the second finds the first's outcome instead.
	reconciling sync.Map
}

// New returns a Roster.
func New(cfg Config) *Roster { return &Roster{cfg: cfg} }

// PendCommit records the request carrying a pending commit, so that it is
// resent under the same message id if the answer is lost.
func (r *Roster) PendCommit(tx *store.Tx, conv string, epoch uint64, cm e2ee.Commit) (*wire.Send, error) {
	if r.cfg.Held != nil {
		if err := r.cfg.Held(tx, conv); err != nil {
			return nil, err
		}
	}
	id, err := r.cfg.NewID()
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
	return req, tx.PutMeta(convstate.CommitName(conv), raw)
}

// FinishCommit sends a pending commit; the hub's answer decides whether
// the group merges it or drops it.
func (r *Roster) FinishCommit(ctx context.Context, conv string, req *wire.Send) error {
	_, err := r.cfg.Call(ctx, "client.Commit", &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: req}})
	if outcomeUnknown(err) {
		return err // unknown outcome: resend the same request later
	}
	self, serr := r.cfg.Self()
	if serr != nil {
		return serr
	}
	uerr := r.cfg.Store.Update(func(tx *store.Tx) error {
		if tx.Meta(convstate.CommitName(conv)) == nil {
			return nil // already settled from a delivery (settlePending)
		}
		if tx.Meta(convstate.ExternalName(conv)) != nil {
			return convstate.SettleExternal(tx, conv, err == nil)
		}
		g, lerr := r.cfg.States.Load(tx, conv, self, r.cfg.Dir.Members(ctx, tx))
		if lerr != nil {
			return lerr
		}
		if err == nil {
			if merr := g.MergeCommit(); merr != nil {
				return fmt.Errorf("client: merge commit: %w", merr)
			}
			if cv, cerr := convstate.Get(tx, conv); cerr == nil && cv.Group {
				if perr := r.UpdatePeers(tx, conv, g.Members(), self); perr != nil {
					return perr
				}
				if len(req.GetAddDevices()) > 0 && r.cfg.Added != nil {
					if aerr := r.cfg.Added(tx, conv); aerr != nil {
						return aerr
					}
				}
			}
		} else {
			g.DiscardCommit()
		}
		if serr := r.cfg.States.Save(tx, conv, g); serr != nil {
			return serr
		}
		return tx.DeleteMeta(convstate.CommitName(conv))
	})
	if uerr != nil {
		return uerr
	}
	return err
}

// Reconcile brings the group's members in line with the signed device
// lists of its users: devices added since are added, devices no longer
// listed (revoked) are removed, in one commit accepted by the hub.
func (r *Roster) Reconcile(ctx context.Context, conv string) error {
	mu, _ := r.reconciling.LoadOrStore(conv, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	self, err := r.cfg.Self()
	if err != nil {
		return err
	}
	var pending []byte
	var meta convstate.Conversation
	var members []string
	var epoch uint64
	err = r.cfg.Store.Update(func(tx *store.Tx) error {
		pending = tx.Meta(convstate.CommitName(conv))
		if meta, err = convstate.Get(tx, conv); err != nil {
			return fmt.Errorf("client: conversation %s: %w", conv, err)
		}
		return r.cfg.States.View(tx, conv, self, r.cfg.Dir.Members(ctx, tx), func(g e2ee.Group) error {
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
		if err := r.FinishCommit(ctx, conv, req); err != nil {
			return err
		}
		return convstate.ErrRedo // membership changed: look again with the new state
	}
	peers := meta.Peers
	if meta.Group {
		peers = convstate.PeersOf(members, convstate.UserOf(self.Address))
	}
	add, remove, err := r.diff(ctx, convstate.UserOf(self.Address), peers, members)
	if err != nil {
		return err
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	kps, err := r.claim(ctx, add, members)
	if err != nil {
		return err
	}
	if len(kps) == 0 && len(remove) == 0 {
		return nil
	}
	var req *wire.Send
	err = r.cfg.Store.Update(func(tx *store.Tx) error {
		if tx.Meta(convstate.CommitName(conv)) != nil {
			// Another reconcile of this conversation in this process (a
			// background drop of revoked devices, say) committed since
			// the look above: settle that one first.
			return convstate.ErrRedo
		}
		g, err := r.cfg.States.Load(tx, conv, self, r.cfg.Dir.Members(ctx, tx))
		if err != nil {
			return err
		}
		if g.Epoch() != epoch {
			return convstate.ErrRedo
		}
		cm, err := g.Commit(kps, remove)
		if err != nil {
			return fmt.Errorf("client: commit: %w", err)
		}
		if err := r.cfg.States.Save(tx, conv, g); err != nil {
			return err
		}
		req, err = r.PendCommit(tx, conv, epoch, cm)
		return err
	})
	if err != nil {
		return err
	}
	return r.FinishCommit(ctx, conv, req)
}

// diff compares members with the devices on the signed lists of the
// conversation's users.
func (r *Roster) diff(ctx context.Context, me string, peers, members []string) (add map[string][]string, remove []string, err error) {
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
	lists, berr := r.cfg.Dir.FetchMany(ctx, nil, addrs)
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
			l, err = r.cfg.Dir.Fetch(ctx, nil, addrs[i])
		}
		if err != nil {
			// A peer whose server cannot be reached now keeps the devices it
			// already has in the conversation: the message still goes to the
			// hub, which queues it for that server. With none, nothing can
			// be sent to that user, so the error stands.
			kept := convstate.DevicesOf(members, u)
			if len(kept) == 0 || !session.Retryable(err) {
				return nil, nil, err
			}
			r.cfg.Log.Warn("device list unavailable; keeping the user's current devices", "user", u, "err", err)
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

// claim fetches one KeyPackage for each device in add. Devices that have
// none left are left out (they join when they publish new ones).
func (r *Roster) claim(ctx context.Context, add map[string][]string, members []string) ([][]byte, error) {
	kps, _, err := r.ClaimUsers(ctx, add, members)
	return kps, err
}

// maxClaimUsers is the most users one ClaimKeyPackages may name.
const maxClaimUsers = 64

// ClaimUsers is claim that also says which users got at least one package.
func (r *Roster) ClaimUsers(ctx context.Context, add map[string][]string, members []string) ([][]byte, map[string]bool, error) {
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
			if slices.Contains(chunk, convstate.UserOf(m)) {
				exclude = append(exclude, m)
			}
		}
		r, err := r.cfg.Call(ctx, "client.ClaimKeyPackages", &wire.ClientFrame{Body: &wire.ClientFrame_ClaimKeyPackages{ClaimKeyPackages: &wire.ClaimKeyPackages{
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

// Settle settles a pending commit and, with checkRoster, adds users'
// new devices and removes revoked ones (reconcile); a successful check
// counts for sends as well (markSynced).
func (r *Roster) Settle(ctx context.Context, conv string, checkRoster bool) error {
	if !checkRoster {
		var pending bool
		if err := r.cfg.Store.View(func(tx *store.Tx) error { pending = tx.Meta(convstate.CommitName(conv)) != nil; return nil }); err != nil {
			return err
		}
		if !pending {
			return nil
		}
	}
	for try := 0; ; try++ {
		err := r.Reconcile(ctx, conv)
		if err == nil {
			r.MarkSynced(conv)
			return nil
		}
		if err != convstate.ErrRedo || try == 3 {
			return err
		}
	}
}

// DevicesToAdd lists, per user, the devices on its signed list not yet
// members. The lists come in one batch (FetchDeviceLists); a user the
// server has no list for is an error, as with one FetchDeviceList.
func (r *Roster) DevicesToAdd(ctx context.Context, users, members []string) (map[string][]string, error) {
	add := map[string][]string{}
	addrs := make([]identity.UserAddress, 0, len(users))
	for _, u := range users {
		ua, err := identity.ParseUser(u)
		if err != nil {
			return nil, wire.E("client.Group", wire.Code_CODE_BAD_REQUEST, err)
		}
		addrs = append(addrs, ua)
	}
	lists, err := r.cfg.Dir.FetchMany(ctx, nil, addrs)
	if err != nil {
		return nil, err
	}
	for i, u := range users {
		l, ok := lists[addrs[i]]
		if !ok {
			// Ask once more on its own, for the server's reason.
			if l, err = r.cfg.Dir.Fetch(ctx, nil, addrs[i]); err != nil {
				return nil, err
			}
		}
		for _, d := range l.Devices {
			if a := u + "/" + d.DeviceID; !slices.Contains(members, a) {
				add[u] = append(add[u], a)
			}
		}
	}
	return add, nil
}

// ClaimedAll refuses a commit that would leave a requested user (other
// than this one) out because none of its devices has a KeyPackage.
func ClaimedAll(add map[string][]string, got map[string]bool, me string) error {
	for u, devs := range add {
		if u != me && len(devs) > 0 && !got[u] {
			return wire.Errorf("client.Group", wire.Code_CODE_NO_KEY_PACKAGES, "%s has no device that can be added (no published KeyPackages)", u)
		}
	}
	return nil
}

// groupSyncEvery is how long a group's roster counts as in line with its
// users' device lists after a check by this client. Group operations
// always check.
const groupSyncEvery = 30 * time.Second

// directSyncEvery is the same for a 1:1 conversation: within it, a send
// uses the pinned, verified device lists instead of fetching them again.
// A change this client learns of sooner resets it (unsyncAll, unsync): a
// fetched list that differs from the pinned one, a commit received in the
// conversation, a stale-epoch refusal, an approval or revocation made here.
// So a peer's device added by anyone else's commit is in the group at once,
// and one that nobody added yet is added by this client's first send after
// at most directSyncEvery (a new process, e.g. `hearth chat send`, always
// checks).
const directSyncEvery = 10 * time.Second

// Fresh reports whether conv was checked by this client within
// its window and has no commit pending.
func (r *Roster) Fresh(conv string) bool {
	fresh := false
	r.cfg.Store.Peek(func(tx *store.Tx) error { fresh = r.FreshIn(tx, conv); return nil })
	return fresh
}

// FreshIn is Fresh reading the conversation in tx.
func (r *Roster) FreshIn(tx *store.Tx, conv string) bool {
	r.mu.Lock()
	at, ok := r.synced[conv]
	r.mu.Unlock()
	if !ok {
		return false
	}
	cv, err := convstate.Get(tx, conv)
	if err != nil || tx.Meta(convstate.CommitName(conv)) != nil {
		return false
	}
	window := directSyncEvery
	if cv.Group {
		window = groupSyncEvery
	}
	return r.cfg.Now().Sub(at) <= window
}

func (r *Roster) MarkSynced(conv string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.synced == nil {
		r.synced = map[string]time.Time{}
	}
	r.synced[conv] = r.cfg.Now()
}

// Unsync makes the next send to conv check its roster against the lists.
func (r *Roster) Unsync(conv string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.synced, conv)
}

// UnsyncAll does unsync for every conversation (a device list changed).
func (r *Roster) UnsyncAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.synced)
}

// UpdatePeers records conv's peers: the users of members other than self.
func (r *Roster) UpdatePeers(tx *store.Tx, conv string, members []string, self e2ee.Self) error {
	cv, err := convstate.Get(tx, conv)
	if err != nil {
		return err
	}
	cv.Peers = convstate.PeersOf(members, convstate.UserOf(self.Address))
	return convstate.Remember(tx, cv)
}

// IsMember reports whether device is in conv's group as this device holds it.
func (r *Roster) IsMember(conv, device string) (bool, error) {
	self, err := r.cfg.Self()
	if err != nil {
		return false, err
	}
	var in bool
	err = r.cfg.Store.View(func(tx *store.Tx) error {
		return r.cfg.States.View(tx, conv, self, r.cfg.Dir.Pinned(), func(g e2ee.Group) error {
			in = slices.Contains(g.Members(), device)
			return nil
		})
	})
	return in, err
}

// outcomeUnknown tells whether a commit's Send may have been accepted by
// the hub although no answer came: the connection dropped, or the call's
// context ended while it waited (the request may have gone out: a device
// approval that ran out of time did, and its device then skipped its own
// accepted commit when it came back in its mailbox, and fell out of step).
// The pending commit is then kept, to be sent again with the same message
// id (the hub answers a repeat with the first result) or settled by the
// next delivery of the conversation (settlePending); only a refusal drops it.
func outcomeUnknown(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	default:
		return session.Retryable(err) && !wire.Is(err, wire.Code_CODE_STALE_EPOCH)
	}
}
