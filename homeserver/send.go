package homeserver

import (
	"context"
	"errors"
	"time"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/hub"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// sendResult is what one accepted (or deduplicated) Send produced; with
// federation, also the servers it queued a DELIVER for.
type sendResult struct {
	*hub.Result
	accepted *fedlink.Accepted
}

// send validates a Send and queues it for the writer; the answer follows
// the commit (pipelined: the next request is read meanwhile).
func (ss *session) send(id uint64, m *wire.Send) {
	const op = "homeserver.Send"
	received := ss.s.now()
	if err := ss.s.hub.ValidateSend(op, m); err != nil {
		ss.writeError(id, err)
		return
	}
	from := identity.DeviceAddress{User: ss.s.user(ss.userName), Device: ss.deviceID}
	sender := from.String()
	// A retry of an accepted message is answered from its dedup record:
	// in the writer's transaction (hub.Accept reads it first), so that a
	// local Send costs no read transaction of its own; read here only
	// where the writer would not see it first: before a refusal for
	// rate, for a conversation hubbed elsewhere, and for a commit or
	// proposal (rare; their device lists are fetched before the writer).
	res := &sendResult{Result: &hub.Result{Dup: true}}
	dedup := func() bool {
		err := ss.s.db.Read(ss.ctx, func(tx *storage.Tx) (err error) { res.Rec, err = tx.SendRecord(sender, m.MessageId); return err })
		if err == nil {
			ss.later(func() { ss.answer(id, res.Frame(), nil) })
			return true
		} else if !errors.Is(err, storage.ErrNotFound) {
			ss.writeError(id, internal(op, err))
			return true
		}
		return false
	}
	rl := ss.s.sendRate.Load() // reloadable (Server.Reload)
	if ok, wait := ss.s.limits.allow("send:"+ss.deviceID, ss.s.now(), rl.PerSecond, rl.Burst); !ok {
		if !dedup() {
			ss.writeError(id, &wire.Error{Op: op, Kind: wire.Code_CODE_RATE_LIMITED, Msg: "sending too fast", RetryAfter: max(wait.Milliseconds(), 1)})
		}
		return
	}
	if conv, _ := identity.ParseConversation(m.ConversationId); conv.Hub() != ss.s.cfg.Domain && ss.s.fed != nil {
		if !dedup() {
			ss.sendRemote(id, m, sender, conv.Hub())
		}
		return
	}
	if m.Kind != wire.MessageKind_MESSAGE_KIND_APPLICATION && dedup() {
		return // a retried commit or proposal: no device lists fetched for it
	}
	in := &hub.Input{Send: m, Sender: from, DeviceID: ss.deviceID, NowMs: ss.s.nowMs()}
	if err := ss.s.fetchLists(ss.ctx, op, in); err != nil {
		ss.writeError(id, err)
		return
	}
	var started time.Time // when the writer ran it: set before wait returns
	wait := ss.s.db.Submit(ss.ctx, func(tx *storage.Tx) (err error) {
		started = ss.s.now()
		res, err = ss.s.accept(op, tx, in)
		return err
	})
	ss.later(func() {
		if err := wait(); err != nil {
			ss.writeError(id, internal(op, err))
			return
		}
		committed := ss.s.now()
		ss.s.ctr.receiveToWriter.Observe(started.Sub(received))
		ss.s.ctr.receiveToCommit.Observe(committed.Sub(received))
		ss.s.dlv.HandCommitted(res.Heads, res.WelcomeFrom, res.Log) // only now: nothing is pushed that is not durable
		ss.s.wakeRemote(res)
		if !res.Dup {
			ss.s.ctr.accepted.Add(1)
		}
		ss.answer(id, res.Frame(), nil)
		ss.s.ctr.commitToAck.Observe(ss.s.now().Sub(committed))
	})
}

// accept runs a Send through the hub, with federation through the link
// (which queues the DELIVERs for the other servers with members in the
// same transaction).
func (s *Server) accept(op string, tx *storage.Tx, in *hub.Input) (*sendResult, error) {
	if s.fed != nil {
		a, err := s.fed.Accept(op, tx, in)
		if err != nil {
			return nil, err
		}
		return &sendResult{Result: a.Result, accepted: a}, nil
	}
	r, err := s.hub.Accept(op, tx, in)
	if err != nil {
		return nil, err
	}
	return &sendResult{Result: r}, nil
}

// sendRemote handles a local device's Send to a conversation hubbed
// elsewhere: the submission is stored and its SUBMIT queued in one
// transaction; the answer is the hub's verdict, or CODE_UNAVAILABLE when it
// has not come within SendWait (the retry with the same message id waits
// for the same submission).
func (ss *session) sendRemote(id uint64, m *wire.Send, sender, hubDomain string) {
	const op = "homeserver.Send"
	envID, err := ss.s.fed.Submit(ss.ctx, m, sender, hubDomain)
	if err != nil {
		ss.writeError(id, internal(op, err))
		return
	}
	ss.later(func() {
		fr, err := ss.s.fed.Await(ss.ctx, op, envID)
		ss.answer(id, fr, err)
	})
}

// wakeRemote starts the sender loops of servers a Send queued DELIVERs for.
func (s *Server) wakeRemote(res *sendResult) {
	if s.fed != nil && res.accepted != nil {
		s.fed.WakeAll(res.accepted)
	}
}

// fetchLists fetches, before a commit or proposal goes to the writer, the
// signed device lists of remote users that the hub needs to verify it and
// does not hold (hub.ListsToFetch), so that the writer's transaction does
// no network I/O. A list that cannot be fetched is left to the hub, which
// refuses the Send with CODE_UNAVAILABLE (retryable).
func (s *Server) fetchLists(ctx context.Context, op string, in *hub.Input) error {
	if s.fed == nil || (in.Send.Kind != wire.MessageKind_MESSAGE_KIND_COMMIT && in.Send.Kind != wire.MessageKind_MESSAGE_KIND_PROPOSAL) {
		return nil
	}
	var users []string
	err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { users, err = s.hub.ListsToFetch(tx, in); return err })
	if err != nil {
		return internal(op, err)
	}
	for _, u := range users {
		if d, ok := s.fed.Queries.RemoteDomain(u); ok {
			if _, err := s.fed.Queries.FetchRemoteList(ctx, d, u); err != nil {
				s.log.Info("hub: device list for a commit not fetched", "user", u, "err", err)
				continue
			}
			if in.Fetched == nil {
				in.Fetched = map[string]bool{}
			}
			in.Fetched[u] = true
		}
	}
	return nil
}

// fetchListsLater is hub.Config.FetchLists: the hub refused a Send for
// lack of these remote users' lists; fetch them for its retry.
func (s *Server) fetchListsLater(users []string) {
	if s.fed == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, u := range users {
			if d, ok := s.fed.Queries.RemoteDomain(u); ok {
				if _, err := s.fed.Queries.FetchRemoteList(ctx, d, u); err != nil {
					s.log.Info("hub: device list for a refused commit not fetched", "user", u, "err", err)
				}
			}
		}
	}()
}
