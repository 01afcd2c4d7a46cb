package fedlink

import (
	"context"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Presence across servers, on the signal path like typing (signals.go).
// A user's server sends each change of the user's presence to the servers
// that share a conversation with the user: for conversations it hubs, to
// every server with members, naming the recipients (users there); for
// conversations hubbed elsewhere, to the hub. A hub that receives a
// presence from the user's own server pushes it to its users in the
// conversations it hubs with that user and relays it, with recipients, to
// the other servers of those conversations. A server pushes a relayed
// presence only to recipients that are in a conversation of the relaying
// hub. The receiving server remembers the state, so it is only as current
// as the last signal that arrived (signals are lossy); a session learns a
// remote user's presence when it changes, and, once one arrived since this
// server started, its last known state when the session connects.
//
// Each server repeats its users' ONLINE and AWAY states every refresh
// (RefreshPresence, batched per destination) with a time to live
// (presence_ttl_ms); a receiver holds such a state that long after it
// last arrived, then takes the user as OFFLINE (Lapsed), so that the
// users of a crashed or cut-off server do not stay online. A repetition
// that changes nothing is relayed (it renews the state further on) but not
// pushed to sessions again.

// sendPresence sends a local user's presence to the servers sharing a
// conversation with the user.
func (f *Signals) SendPresence(userID int64, user string, st wire.PresenceState, atMs int64, ttl time.Duration) {
	var remote, hubs []string
	err := f.db.Read(context.Background(), func(tx *storage.Tx) (err error) {
		remote, hubs, err = tx.PresenceTargets(userID, f.domain)
		return err
	})
	if err != nil {
		f.log.Warn("federation: presence targets", "err", err)
		return
	}
	for d, env := range presenceEnvelopes(user, st, atMs, ttl, remote, hubs) {
		f.sendSignal(d, env)
	}
}

// presenceEnvelopes is a presence per destination: the servers of the
// remote users named (as recipients) and the hubs.
func presenceEnvelopes(user string, st wire.PresenceState, atMs int64, ttl time.Duration, remote, hubs []string) map[string]*fedwire.Envelope {
	out := map[string]*fedwire.Envelope{}
	for d, users := range usersByDomain(remote, "") {
		out[d] = presenceEnvelope(user, st, atMs, ttl, users)
	}
	for _, h := range hubs {
		if _, sent := out[h]; !sent {
			out[h] = presenceEnvelope(user, st, atMs, ttl, nil)
		}
	}
	return out
}

func presenceEnvelope(user string, st wire.PresenceState, atMs int64, ttl time.Duration, recipients []string) *fedwire.Envelope {
	return &fedwire.Envelope{Id: newEnvelopeID("prs-"), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE,
		Sender: user, Presence: uint32(st), LastActiveMs: atMs, Recipients: recipients, PresenceTtlMs: uint32(ttl.Milliseconds())}
}

// LocalPresence is a local user's present state, repeated to the servers
// sharing a conversation with the user.
type LocalPresence struct {
	UserID int64
	User   string
	State  wire.PresenceState
	AtMs   int64
}

// maxSignalBatch bounds the envelopes of one repetition transaction.
const maxSignalBatch = 100

// RefreshPresence repeats local users' states to the servers sharing a
// conversation with them, in as few transactions as it can; it waits for
// free signal flights (until ctx ends) rather than dropping repetitions.
func (f *Signals) RefreshPresence(ctx context.Context, users []LocalPresence, ttl time.Duration) {
	byDest := map[string][]*fedwire.Envelope{}
	err := f.db.Read(ctx, func(tx *storage.Tx) error {
		for _, u := range users {
			remote, hubs, err := tx.PresenceTargets(u.UserID, f.domain)
			if err != nil {
				return err
			}
			for d, env := range presenceEnvelopes(u.User, u.State, u.AtMs, ttl, remote, hubs) {
				byDest[d] = append(byDest[d], env)
			}
		}
		return nil
	})
	if err != nil {
		f.log.Warn("federation: presence refresh targets", "err", err)
		return
	}
	for d, envs := range byDest {
		for len(envs) > 0 {
			n := min(len(envs), maxSignalBatch)
			f.sendSignalsWait(ctx, d, envs[:n])
			envs = envs[n:]
		}
	}
}

// Lapsed tells the local users who were told user's presence that user,
// whose state lapsed (its server stopped repeating it), is OFFLINE.
func (f *Signals) Lapsed(user string, atMs int64) {
	var ids []int64
	f.peersMu.Lock()
	for id, m := range f.peerOf {
		if _, ok := m[user]; ok {
			ids = append(ids, id)
		}
	}
	f.peersMu.Unlock()
	f.sessions.PushPresence(ids, &wire.PresenceEvent{User: user, State: wire.PresenceState_PRESENCE_STATE_OFFLINE, LastActiveMs: atMs})
}

// Remote presence TTL bounds: a state with no TTL holds defaultPresenceTTL;
// a peer cannot make one hold longer than MaxPresenceTTL (exported for
// tests and docs).
const (
	defaultPresenceTTL = 3 * time.Minute
	minPresenceTTL     = time.Second
	MaxPresenceTTL     = time.Hour
)

// presenceUntil is when a remote state that arrived now lapses.
func (f *Signals) presenceUntil(env *fedwire.Envelope) int64 {
	ttl := time.Duration(env.GetPresenceTtlMs()) * time.Millisecond
	if ttl == 0 {
		ttl = defaultPresenceTTL
	}
	return f.nowMs() + min(max(ttl, minPresenceTTL), MaxPresenceTTL).Milliseconds()
}

// usersByDomain groups user addresses by domain, leaving out except.
func usersByDomain(users []string, except string) map[string][]string {
	out := map[string][]string{}
	for _, u := range users {
		if a, err := identity.ParseUser(u); err == nil && a.Domain != except {
			out[a.Domain] = append(out[a.Domain], u)
		}
	}
	return out
}

// applyPresence pushes a remote user's presence to the local users it
// concerns and, when it comes from the user's own server, adds what to
// relay for the conversations hubbed here to relays (per destination).
func (f *Signals) applyPresence(ctx context.Context, origin string, env *fedwire.Envelope, relays map[string][]*fedwire.Envelope) error {
	const op = "homeserver.applyPresence"
	if err := federation.CheckEnvelope(origin, f.domain, env); err != nil {
		return err
	}
	user := env.GetSender()
	ua, err := identity.ParseUser(user)
	if err != nil {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "presence of " + user + ": not a user address"}
	}
	firstHop := ua.Domain == origin
	var ids []int64
	var relay []string
	err = f.db.Read(ctx, func(tx *storage.Tx) error {
		if firstHop {
			local, remote, err := tx.UsersSharingHubbed(user, f.domain)
			if err != nil {
				return err
			}
			ids, relay = local, remote
			// The user's own server names its recipients here.
			for _, r := range f.localNames(env.GetRecipients()) {
				if u, err := tx.UserByName(r); err == nil {
					ids = append(ids, u.ID)
				}
			}
			return nil
		}
		// A relay: origin may tell a recipient the presence of a user of
		// another server only when it hubs a conversation the recipient
		// is in. (That the user is in it too this server cannot check: its
		// copy holds its own members only; the hub is trusted for its
		// conversations' rosters, as for the senders it delivers.)
		for _, r := range f.localNames(env.GetRecipients()) {
			id, ok, err := tx.UserInConversationOf(r, origin)
			if err != nil {
				return err
			}
			if ok {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_INTERNAL, Msg: "read rosters"}
	}
	if !firstHop && len(ids) == 0 {
		// Nobody here may be told: the relay is refused and, above all,
		// not remembered as the user's presence.
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_FORBIDDEN,
			Msg: origin + " hubs no conversation of the recipients named; it may not tell the presence of " + user}
	}
	st := wire.PresenceState(env.GetPresence())
	changed := f.presence.Set(user, st, env.GetLastActiveMs(), f.presenceUntil(env))
	f.notePeers(ids, user)
	if changed {
		f.sessions.PushPresence(ids, &wire.PresenceEvent{User: user, State: st, LastActiveMs: env.GetLastActiveMs()})
	}
	ttl := time.Duration(env.GetPresenceTtlMs()) * time.Millisecond
	for d, users := range usersByDomain(relay, origin) {
		relays[d] = append(relays[d], presenceEnvelope(user, st, env.GetLastActiveMs(), ttl, users))
	}
	return nil
}

// localNames returns the local parts of the user addresses of this
// server among users.
func (f *Signals) localNames(users []string) []string {
	var out []string
	for _, u := range users {
		if a, err := identity.ParseUser(u); err == nil && a.Domain == f.domain {
			out = append(out, a.Local)
		}
	}
	return out
}

// maxRemotePeers bounds the remote users remembered per local user.
const maxRemotePeers = 1000

// notePeers remembers that the local users ids were told user's presence,
// so that their sessions get user's last known state when they connect.
func (f *Signals) notePeers(ids []int64, user string) {
	f.peersMu.Lock()
	defer f.peersMu.Unlock()
	if f.peerOf == nil {
		f.peerOf = map[int64]map[string]struct{}{}
	}
	for _, id := range ids {
		m := f.peerOf[id]
		if m == nil {
			m = map[string]struct{}{}
			f.peerOf[id] = m
		}
		if len(m) < maxRemotePeers {
			m[user] = struct{}{}
		}
	}
}

// remotePeers returns the remote users whose presence local user id was
// told since this server started.
func (f *Signals) RemotePeers(id int64) []string {
	f.peersMu.Lock()
	defer f.peersMu.Unlock()
	out := make([]string, 0, len(f.peerOf[id]))
	for u := range f.peerOf[id] {
		out = append(out, u)
	}
	return out
}
