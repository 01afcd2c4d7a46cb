package hub

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/storage"
)

// MaxMessageID is the longest client-chosen message id, in bytes.
const MaxMessageID = 128

// ValidateSend checks a Send before it reaches the writer: id, sizes,
// kind and the shape of a roster change.
func (h *Hub) ValidateSend(op string, m *wire.Send) error {
	if _, err := h.CheckConversationID(op, m.GetConversationId()); err != nil {
		return err
	}
	if n := len(m.GetMessageId()); n == 0 || n > MaxMessageID || !utf8.ValidString(m.MessageId) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "message id must be UTF-8 of 1..%d bytes", MaxMessageID)
	}
	if len(m.GetPayload()) == 0 {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "empty payload")
	}
	limit, what := h.cfg.MaxMessageBytes, "message"
	if m.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT {
		limit, what = h.cfg.MaxCommitBytes, "commit"
	}
	if n := len(m.Payload) + len(m.GetWelcome()) + len(m.GetGroupInfo()); n > limit {
		return wire.Errorf(op, wire.Code_CODE_TOO_LARGE, "%s of %d bytes over the %d byte limit", what, n, limit)
	}
	switch m.GetKind() {
	case wire.MessageKind_MESSAGE_KIND_APPLICATION, wire.MessageKind_MESSAGE_KIND_PROPOSAL:
		if len(m.AddDevices)+len(m.RemoveDevices)+len(m.Welcome)+len(m.GroupInfo) > 0 {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "only a commit changes the roster or carries welcome/group info")
		}
	case wire.MessageKind_MESSAGE_KIND_COMMIT:
		if len(m.AddDevices) > h.cfg.MaxMembers || len(m.RemoveDevices) > h.cfg.MaxMembers {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "roster change over %d devices", h.cfg.MaxMembers)
		}
		seen := map[string]bool{}
		for _, a := range append(append([]string(nil), m.AddDevices...), m.RemoveDevices...) {
			if _, err := identity.ParseDevice(a); err != nil {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid device address %q", a)
			}
			if seen[a] {
				return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device %s named twice in one commit", a)
			}
			seen[a] = true
		}
	default:
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "message kind must be APPLICATION, PROPOSAL or COMMIT")
	}
	return nil
}

// Accept is the whole of one Send inside the writer's transaction: dedup
// record, log append, roster change (AcceptCommit), every recipient's
// mailbox entry. Its errors are *wire.Error refusals or storage failures;
// the caller rolls back what it wrote on an error (the writer's savepoint
// per request, or Tx.Savepoint), the dedup record included.
func (h *Hub) Accept(op string, tx *storage.Tx, in *Input) (*Result, error) {
	m := in.Send
	sender := in.Sender.String()
	res := &Result{}
	dup := func() (*Result, error) {
		rec, err := tx.SendRecord(sender, m.MessageId)
		if err != nil {
			return nil, err
		}
		res.Rec, res.Dup = rec, true
		return res, nil
	}
	// A commit reads the conversation with its GroupInfo (checkGroupAuth)
	// and, when federated, the roster as it was; any other Send reads the
	// conversation without the GroupInfo blob, the sender's membership and
	// (federated) the members on other servers in one statement.
	var (
		c      *storage.Conversation
		view   *storage.SendView
		member bool
		err    error
	)
	commit := m.Kind == wire.MessageKind_MESSAGE_KIND_COMMIT
	if commit {
		c, err = tx.Conversation(m.ConversationId)
	} else if view, err = tx.ConversationForSend(m.ConversationId, sender, in.DeviceID, h.cfg.Federated); err == nil {
		c, member, res.Before = view.Conv, view.Member, view.Remote
	}
	if errors.Is(err, storage.ErrNotFound) {
		if r, err := dup(); err == nil || !errors.Is(err, storage.ErrNotFound) {
			return r, err // a retry of a message accepted before the conversation went
		}
		return nil, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation %s", m.ConversationId)
	} else if err != nil {
		return nil, err
	}
	res.Conv = c
	// The dedup record is claimed first, in the statement that checks for
	// it: a retry is answered from the record found, a refusal below rolls
	// the claim back with everything else.
	newEpoch := c.Epoch
	if commit {
		newEpoch = c.Epoch + 1
	}
	rec := &storage.SendRecord{Sender: sender, MessageID: m.MessageId, ConvID: c.ID, ConvSeq: c.LastSeq + 1, Epoch: newEpoch, CreatedMs: in.NowMs}
	if claimed, err := tx.ClaimSendRecord(rec); err != nil {
		return nil, err
	} else if !claimed {
		return dup()
	}
	if commit {
		if h.cfg.Federated {
			// The roster as it was, for the other servers (fedlink); the
			// sender's membership is read from it (one query, not two).
			if res.Before, err = tx.Members(c.ID); err != nil {
				return nil, err
			}
			for _, mb := range res.Before {
				if mb.Address == sender {
					member = true
					break
				}
			}
		} else if member, err = tx.IsMember(c.ID, sender); err != nil {
			return nil, err
		}
	}
	entry := &storage.LogEntry{ConvID: c.ID, Seq: c.LastSeq + 1, Sender: sender, MessageID: m.MessageId,
		Kind: int(m.Kind), Epoch: m.Epoch, Payload: m.Payload, CreatedMs: in.NowMs}
	if commit {
		if err := h.AcceptCommit(op, tx, c, in, member, entry, res); err != nil {
			return nil, err
		}
	} else if err := h.acceptMessage(op, tx, c, in, member, view, entry, res); err != nil {
		return nil, err
	}
	if entry.Seq != rec.ConvSeq {
		return nil, fmt.Errorf("hub: message %s logged at %d, its dedup record says %d", m.MessageId, entry.Seq, rec.ConvSeq)
	}
	res.Log, res.Rec = entry, rec
	return res, nil
}

// acceptMessage accepts an application message from the current epoch back
// to EpochWindow epochs, or a proposal of the current epoch, for recips
// (storage.SendView.Recipients).
func (h *Hub) acceptMessage(op string, tx *storage.Tx, c *storage.Conversation, in *Input, member bool,
	view *storage.SendView, entry *storage.LogEntry, res *Result) error {
	m := in.Send
	recips := view.Recipients
	if !member {
		return wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", c.ID)
	}
	stale := m.Epoch > c.Epoch || c.Epoch-m.Epoch > h.cfg.EpochWindow
	if m.Kind == wire.MessageKind_MESSAGE_KIND_PROPOSAL {
		stale = m.Epoch != c.Epoch
	}
	if stale {
		return wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "epoch %d not accepted; conversation is at epoch %d", m.Epoch, c.Epoch)
	}
	// Within the window, but older than a device added since: that device
	// (a user's newly linked one, say) could not read it, and would get
	// it as undecryptable. The sender catches up and seals it again in
	// the current epoch, which every member can read.
	if m.Epoch < view.LastAdded {
		return wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "epoch %d not accepted; devices were added at epoch %d, and conversation is at epoch %d",
			m.Epoch, view.LastAdded, c.Epoch)
	}
	if m.Kind == wire.MessageKind_MESSAGE_KIND_PROPOSAL {
		pg, err := loadState(tx, c.ID)
		if err != nil {
			return err
		}
		if pg != nil {
			next, err := h.acceptProposal(op, tx, pg, in)
			if err != nil {
				return err
			}
			if err := storeState(tx, c.ID, next); err != nil {
				return err
			}
		}
	}
	// The entry goes in with the transaction's other deferred rows: its
	// sequence is the conversation's next, advanced below.
	entry.Refs = len(recips) // FanOutTo's rows
	if err := tx.QueueLog(entry); err != nil {
		return err
	}
	var err error
	if res.Heads, err = tx.FanOutTo(c.ID, entry.Seq, in.DeviceID, recips, in.NowMs); err != nil {
		return err
	}
	res.WelcomeFrom = len(res.Heads)
	return tx.AdvanceConversation(c.ID, c.Epoch, nil, entry.Seq, false)
}

// AcceptCommit accepts exactly one commit per epoch: it fans the commit out
// to the roster as it was (removed devices get the commit that removes
// them, and nothing after), changes the roster, queues the welcome for the
// added devices and moves the conversation to the next epoch. The commit
// is verified against the conversation's public MLS state
// (verifyCommit), the roster change is the one derived from it, and the
// state of the next epoch is stored in the same transaction. Every rule
// a commit must pass before the conversation moves on is checked before
// anything is written.
func (h *Hub) AcceptCommit(op string, tx *storage.Tx, c *storage.Conversation, in *Input, member bool,
	entry *storage.LogEntry, res *Result) error {
	m := in.Send
	members, adds, removes, next, err := h.checkCommit(op, tx, c, in, member)
	if err != nil {
		return err
	}
	if n := len(members) + len(adds) - len(removes); n > h.cfg.MaxMembers {
		return wire.Errorf(op, wire.Code_CODE_LIMIT, "conversation would have %d devices; the limit is %d", n, h.cfg.MaxMembers)
	}
	entry.Welcome = m.Welcome
	entry.GroupInfo = m.GroupInfo // delivered with the Welcome, which may omit the tree
	if err := tx.AppendLog(entry); err != nil {
		return err
	}
	if res.Heads, err = tx.FanOut(c.ID, entry.Seq, in.DeviceID, false, 0, in.NowMs); err != nil {
		return err
	}
	res.WelcomeFrom = len(res.Heads)
	for _, a := range removes {
		if err := tx.RemoveMember(c.ID, a); err != nil {
			return err
		}
	}
	for _, mb := range adds {
		if err := tx.AddMember(c.ID, mb, c.Epoch+1); err != nil {
			return err
		}
	}
	if len(adds) > 0 && len(m.Welcome) > 0 {
		heads, err := tx.FanOut(c.ID, entry.Seq, in.DeviceID, true, c.Epoch+1, in.NowMs)
		if err != nil {
			return err
		}
		res.Heads = append(res.Heads, heads...)
	}
	if next != nil {
		if err := storeState(tx, c.ID, next); err != nil {
			return err
		}
	}
	return tx.AdvanceConversation(c.ID, c.Epoch+1, m.GroupInfo, entry.Seq, true)
}

// checkCommit applies the commit rules: the epoch, the commit's
// verification against the public state (who may commit: a member, or a
// device joining or resyncing by external commit; what it changes), the
// group admin rules on the derived change, and the devices to add. It
// returns the roster as it is, the members to add, the addresses to
// remove and the next public state (nil for an unverified conversation,
// Config.UnverifiedCommits).
func (h *Hub) checkCommit(op string, tx *storage.Tx, c *storage.Conversation, in *Input, member bool) (
	[]storage.Member, []storage.Member, []string, *mls.PublicGroup, error) {
	m := in.Send
	if m.Epoch != c.Epoch {
		return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "commit for epoch %d; conversation is at epoch %d", m.Epoch, c.Epoch)
	}
	members, err := tx.Members(c.ID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	roster := map[string]bool{}
	addrs := make([]string, 0, len(members))
	for _, mb := range members {
		roster[mb.Address] = true
		addrs = append(addrs, mb.Address)
	}
	pg, err := loadState(tx, c.ID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var facts *commitFacts
	var next *mls.PublicGroup
	external := false
	if pg == nil {
		if !h.cfg.UnverifiedCommits {
			return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST,
				"conversation %s has no public MLS state (created without the creator's group info); its commits cannot be verified: create it again", c.ID)
		}
		if facts, external, err = h.declaredChange(op, in, member, addrs); err != nil {
			return nil, nil, nil, nil, err
		}
	} else {
		d, err := h.verifyCommit(op, tx, pg, in, member, addrs)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		next, external = d.next, d.external
		facts = &commitFacts{Added: d.adds, Removed: d.removes, ExtChanged: d.change.ExtensionsChanged,
			Extensions: d.change.Extensions, AuthenticatedData: d.change.AuthenticatedData, verified: true}
	}
	if !external && len(facts.Added) > 0 && len(m.Welcome) == 0 {
		return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit that adds devices must carry their welcome")
	}
	if err := h.checkGroupAuth(op, tx, c, in, addrs, facts); err != nil {
		return nil, nil, nil, nil, err
	}
	for _, a := range facts.Removed {
		if !roster[a] {
			return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s is not a member", a)
		}
		if a == in.Sender.String() {
			return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a device cannot commit its own removal")
		}
	}
	adds := make([]storage.Member, 0, len(facts.Added))
	for _, a := range facts.Added {
		if roster[a] {
			return nil, nil, nil, nil, wire.Errorf(op, wire.Code_CODE_CONFLICT, "%s is already a member", a)
		}
		mb, err := h.localMember(op, tx, a)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		adds = append(adds, mb)
	}
	return members, adds, facts.Removed, next, nil
}

// declaredChange is the roster change of a conversation without a public
// state (Config.UnverifiedCommits): the commit's declared add_devices and
// remove_devices, as the hub took them before it verified commits.
func (h *Hub) declaredChange(op string, in *Input, member bool, addrs []string) (*commitFacts, bool, error) {
	m := in.Send
	external := false
	if !member {
		external = len(m.AddDevices) == 1 && m.AddDevices[0] == in.Sender.String() && len(m.RemoveDevices) == 0
		if !external || !UserOnRoster(addrs, in.Sender.User) {
			return nil, false, wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", m.ConversationId)
		}
	}
	f := &commitFacts{Added: m.AddDevices, Removed: m.RemoveDevices}
	if env, err := mls.Inspect(m.Payload); err == nil && env.WireFormat == mls.WirePublicMessage && env.ContentType == mls.ContentCommit {
		f.ExtChanged, f.Extensions, f.AuthenticatedData, f.inspected = env.HasExtensions, env.Extensions, env.AuthenticatedData, env
	}
	return f, external, nil
}

// localMember resolves a device address to be added: a device of this
// server, of the named user, active; or a device of an allowed server.
func (h *Hub) localMember(op string, tx *storage.Tx, addr string) (storage.Member, error) {
	da, err := identity.ParseDevice(addr)
	if err != nil {
		return storage.Member{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid device address %q", addr)
	}
	if da.Domain() != h.cfg.Domain {
		if !h.cfg.Federated {
			return storage.Member{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s is on another server; federation is not available", addr)
		}
		if h.cfg.Allowed != nil && !h.cfg.Allowed(da.Domain()) {
			return storage.Member{}, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", da.Domain())
		}
		// The device's own server checks it exists when the DELIVER arrives.
		return storage.Member{Address: addr}, nil
	}
	d, err := tx.Device(da.Device)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && d.UserName != da.User.Local) {
		return storage.Member{}, wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no device %s", addr)
	} else if err != nil {
		return storage.Member{}, err
	}
	if d.Status != storage.DeviceActive {
		return storage.Member{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "device %s is not active", addr)
	}
	return storage.Member{Address: addr, DeviceID: d.ID}, nil
}

// UserOnRoster reports whether any device of user is a member.
func UserOnRoster(members []string, user identity.UserAddress) bool {
	for _, a := range members {
		if d, err := identity.ParseDevice(a); err == nil && d.User == user {
			return true
		}
	}
	return false
}
