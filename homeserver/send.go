package homeserver

import (
	"errors"
	"unicode/utf8"

	"hearth/federation"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const maxMessageID = 128

// sendResult is what one accepted (or deduplicated) Send produced.
type sendResult struct {
	rec    *storage.SendRecord
	dup    bool
	heads  []storage.Head
	remote map[string]bool // servers with a DELIVER queued
	// For the handoff after the commit (handCommitted): the logged
	// message, and where in heads the welcome's entries begin.
	log         *storage.LogEntry
	welcomeFrom int
}

func (r *sendResult) frame() *wire.ServerFrame {
	return &wire.ServerFrame{Body: &wire.ServerFrame_SendOk{SendOk: &wire.SendOK{
		MessageId: r.rec.MessageID, ConversationSeq: r.rec.ConvSeq, Epoch: r.rec.Epoch,
		ServerTimeMs: r.rec.CreatedMs, Duplicate: r.dup,
	}}}
}

// send validates a Send and queues it for the writer; the answer follows
// the commit (pipelined: the next request is read meanwhile).
func (ss *session) send(id uint64, m *wire.Send) {
	const op = "homeserver.Send"
	if err := ss.s.validateSend(op, m); err != nil {
		ss.writeError(id, err)
		return
	}
	sender := ss.s.deviceAddress(ss.userName, ss.deviceID)
	// A retry of an accepted message is answered from its dedup record.
	res := &sendResult{}
	err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { res.rec, err = tx.SendRecord(sender, m.MessageId); return err })
	if err == nil {
		res.dup = true
		ss.later(func() { ss.answer(id, res.frame(), nil) })
		return
	} else if !errors.Is(err, storage.ErrNotFound) {
		ss.writeError(id, internal(op, err))
		return
	}
	if ok, wait := ss.s.limits.allow("send:"+ss.deviceID, ss.s.now(), ss.s.cfg.RateLimit.PerSecond, ss.s.cfg.RateLimit.Burst); !ok {
		ss.writeError(id, &wire.Error{Op: op, Kind: wire.Code_CODE_RATE_LIMITED, Msg: "sending too fast", RetryAfter: max(wait.Milliseconds(), 1)})
		return
	}
	if hub, _ := federation.HubOf(m.ConversationId); hub != ss.s.cfg.Domain && ss.s.fed != nil {
		ss.sendRemote(id, m, sender, hub)
		return
	}
	in := &sendInput{m: m, sender: sender, deviceID: ss.deviceID, userAddr: ss.s.userAddress(ss.userName), nowMs: ss.s.nowMs()}
	wait := ss.s.db.Submit(ss.ctx, func(tx *storage.Tx) error { return ss.s.applySend(op, tx, in, res) })
	ss.later(func() {
		if err := wait(); err != nil {
			ss.writeError(id, internal(op, err))
			return
		}
		ss.s.handCommitted(res) // only now: nothing is pushed that is not durable
		ss.s.wakeRemote(res)
		ss.answer(id, res.frame(), nil)
	})
}

// notify tells the router about new mailbox heads.
func (s *Server) notify(heads []storage.Head) {
	for _, h := range heads {
		s.router.Notify(h.DeviceID, h.Seq)
	}
}

// handCommitted gives the pushers of the recipients the entries a
// committed Send wrote (session_handoff.go): one Entry for the message
// and one for its welcome, shared by all their devices. Routers that do
// not carry entries are notified as before.
func (s *Server) handCommitted(res *sendResult) {
	en, ok := s.router.(EntryNotifier)
	if !ok || res.log == nil {
		s.notify(res.heads)
		return
	}
	l := res.log
	msg := &storage.Entry{ConvID: l.ConvID, ConvSeq: l.Seq, Sender: l.Sender, MessageID: l.MessageID, Kind: l.Kind,
		Epoch: l.Epoch, Payload: l.Payload, CreatedMs: l.CreatedMs}
	var welcome *storage.Entry
	for i, h := range res.heads {
		e := msg
		if i >= res.welcomeFrom {
			if welcome == nil {
				w := *msg
				w.Welcome, w.Payload, w.GroupInfo = true, l.Welcome, l.GroupInfo
				welcome = &w
			}
			e = welcome
		}
		en.NotifyEntry(h.DeviceID, h.Seq, e)
	}
}

func (s *Server) validateSend(op string, m *wire.Send) error {
	if err := s.checkConversationID(op, m.GetConversationId()); err != nil {
		return err
	}
	if n := len(m.GetMessageId()); n == 0 || n > maxMessageID || !utf8.ValidString(m.MessageId) {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "message id must be UTF-8 of 1..%d bytes", maxMessageID)
	}
	if len(m.GetPayload()) == 0 {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "empty payload")
	}
	limit, what := s.cfg.MaxMessageBytes, "message"
	if m.GetKind() == wire.MessageKind_MESSAGE_KIND_COMMIT {
		limit, what = s.cfg.MaxCommitBytes, "commit"
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
		if len(m.AddDevices) > s.cfg.MaxMembers || len(m.RemoveDevices) > s.cfg.MaxMembers {
			return wire.Errorf(op, wire.Code_CODE_LIMIT, "roster change over %d devices", s.cfg.MaxMembers)
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

// sendInput is a validated Send with its sender.
type sendInput struct {
	m        *wire.Send
	sender   string // device address
	deviceID string
	userAddr string
	nowMs    int64
}

// applySend is the whole of one Send inside the writer's transaction: dedup
// record, log append, roster change, every recipient's mailbox entry.
func (s *Server) applySend(op string, tx *storage.Tx, in *sendInput, res *sendResult) error {
	m := in.m
	rec, err := tx.SendRecord(in.sender, m.MessageId)
	if err == nil {
		res.rec, res.dup = rec, true
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	c, err := tx.Conversation(m.ConversationId)
	if errors.Is(err, storage.ErrNotFound) {
		return wire.Errorf(op, wire.Code_CODE_NOT_FOUND, "no conversation %s", m.ConversationId)
	} else if err != nil {
		return err
	}
	member, err := tx.IsMember(c.ID, in.sender)
	if err != nil {
		return err
	}
	var before []storage.Member // the roster as it was, for the remote fan-out
	if s.fed != nil {
		if before, err = tx.Members(c.ID); err != nil {
			return err
		}
	}
	entry := &storage.LogEntry{ConvID: c.ID, Seq: c.LastSeq + 1, Sender: in.sender, MessageID: m.MessageId,
		Kind: int(m.Kind), Epoch: m.Epoch, Payload: m.Payload, CreatedMs: in.nowMs}
	newEpoch := c.Epoch
	switch m.Kind {
	case wire.MessageKind_MESSAGE_KIND_COMMIT:
		if err := s.applyCommit(op, tx, c, in, member, entry, res); err != nil {
			return err
		}
		newEpoch = c.Epoch + 1
	default:
		if !member {
			return wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", c.ID)
		}
		stale := m.Epoch > c.Epoch || c.Epoch-m.Epoch > s.cfg.EpochWindow
		if m.Kind == wire.MessageKind_MESSAGE_KIND_PROPOSAL {
			stale = m.Epoch != c.Epoch
		}
		if stale {
			return wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "epoch %d not accepted; conversation is at epoch %d", m.Epoch, c.Epoch)
		}
		if err := tx.AppendLog(entry); err != nil {
			return err
		}
		if res.heads, err = tx.FanOut(c.ID, entry.Seq, in.deviceID, false, 0, in.nowMs); err != nil {
			return err
		}
		if err := tx.AdvanceConversation(c.ID, c.Epoch, nil, entry.Seq, false); err != nil {
			return err
		}
		res.welcomeFrom = len(res.heads)
	}
	if s.fed != nil {
		if err := s.fed.fanOutRemote(tx, c, entry, m, before, res); err != nil {
			return err
		}
	}
	res.log = entry
	res.rec = &storage.SendRecord{Sender: in.sender, MessageID: m.MessageId, ConvID: c.ID, ConvSeq: entry.Seq, Epoch: newEpoch, CreatedMs: in.nowMs}
	return tx.InsertSendRecord(res.rec)
}

// applyCommit accepts exactly one commit per epoch: it fans the commit out
// to the roster as it was (removed devices get the commit that removes
// them, and nothing after), changes the roster, queues the welcome for the
// added devices and moves the conversation to the next epoch.
func (s *Server) applyCommit(op string, tx *storage.Tx, c *storage.Conversation, in *sendInput, member bool,
	entry *storage.LogEntry, res *sendResult) error {
	m := in.m
	if m.Epoch != c.Epoch {
		return wire.Errorf(op, wire.Code_CODE_STALE_EPOCH, "commit for epoch %d; conversation is at epoch %d", m.Epoch, c.Epoch)
	}
	members, err := tx.Members(c.ID)
	if err != nil {
		return err
	}
	roster := map[string]bool{}
	for _, mb := range members {
		roster[mb.Address] = true
	}
	external := len(m.AddDevices) == 1 && m.AddDevices[0] == in.sender && len(m.RemoveDevices) == 0
	// A resync (decision 0006): a member's external commit replacing its
	// own leaf; the roster stays as it is.
	resync := member && external && len(m.Welcome) == 0
	if !member {
		// An external commit: a device joins by itself, allowed for a user
		// who already has a device in the group.
		if !external || !userOnRoster(keys(roster), in.userAddr) {
			return wire.Errorf(op, wire.Code_CODE_NOT_MEMBER, "not a member of %s", c.ID)
		}
	} else if len(m.AddDevices) > 0 && len(m.Welcome) == 0 && !resync {
		return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a commit that adds devices must carry their welcome")
	}
	if err := s.checkGroupAuth(op, tx, c, in, keys(roster)); err != nil {
		return err
	}
	for _, a := range m.RemoveDevices {
		if !roster[a] {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "%s is not a member", a)
		}
		if a == in.sender {
			return wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "a device cannot commit its own removal")
		}
	}
	adds := make([]storage.Member, 0, len(m.AddDevices))
	for _, a := range m.AddDevices {
		if resync {
			break
		}
		if roster[a] {
			return wire.Errorf(op, wire.Code_CODE_CONFLICT, "%s is already a member", a)
		}
		mb, err := s.localMember(op, tx, a)
		if err != nil {
			return err
		}
		adds = append(adds, mb)
	}
	if n := len(members) + len(adds) - len(m.RemoveDevices); n > s.cfg.MaxMembers {
		return wire.Errorf(op, wire.Code_CODE_LIMIT, "conversation would have %d devices; the limit is %d", n, s.cfg.MaxMembers)
	}
	entry.Welcome = m.Welcome
	entry.GroupInfo = m.GroupInfo // delivered with the Welcome, which may omit the tree
	if err := tx.AppendLog(entry); err != nil {
		return err
	}
	if res.heads, err = tx.FanOut(c.ID, entry.Seq, in.deviceID, false, 0, in.nowMs); err != nil {
		return err
	}
	res.welcomeFrom = len(res.heads)
	for _, a := range m.RemoveDevices {
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
		heads, err := tx.FanOut(c.ID, entry.Seq, in.deviceID, true, c.Epoch+1, in.nowMs)
		if err != nil {
			return err
		}
		res.heads = append(res.heads, heads...)
	}
	return tx.AdvanceConversation(c.ID, c.Epoch+1, m.GroupInfo, entry.Seq, true)
}

// localMember resolves a device address to be added: a device of this
// server, of the named user, active.
func (s *Server) localMember(op string, tx *storage.Tx, addr string) (storage.Member, error) {
	da, err := identity.ParseDevice(addr)
	if err != nil {
		return storage.Member{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid device address %q", addr)
	}
	if da.User.Domain != s.cfg.Domain {
		if s.fed == nil {
			return storage.Member{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "%s is on another server; federation is not available", addr)
		}
		if !s.fed.policy.Allowed(da.User.Domain) {
			return storage.Member{}, wire.Errorf(op, wire.Code_CODE_FORBIDDEN, "federation with %s is not allowed here", da.User.Domain)
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

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// wakeRemote starts the sender loops of servers a Send queued DELIVERs for.
func (s *Server) wakeRemote(res *sendResult) {
	if s.fed == nil {
		return
	}
	for d := range res.remote {
		s.fed.out.Wake(d)
	}
}
