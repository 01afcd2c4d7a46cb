package fedlink

import (
	"context"
	"slices"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

// Typing across servers. Typing is a lossy signal: it travels on the
// federation signal path (federation.PathSignal), one signed transaction
// per signal, with no queue, no retry and no dedup, like the local push
// it ends as. The hub model applies: a follower sends its user's typing
// to the hub, which checks the sender is on the roster, pushes it to its
// own members' devices and sends it on to every other server with
// members; a follower pushes what the hub sends to the recipients named
// that are on its roster copy.

const (
	// maxSignalFlights bounds signal transactions in flight from this
	// server; more are dropped (typing is lossy).
	maxSignalFlights = 32
	signalTimeout    = 5 * time.Second
	// signalRate and signalBurst bound inbound signal transactions per
	// origin server, apart from the budget of messages.
	signalRate  = 50
	signalBurst = 200
)

// relayTyping sends a typing signal on to the conversation's other
// servers: from a follower to the hub; from the hub to every server with
// members except except (the server it came from).
func (f *Signals) RelayTyping(conv, sender string, typing bool, members []storage.Member, except string) {
	hub, err := federation.HubOf(conv)
	if err != nil {
		return
	}
	self := f.domain
	env := func(recipients []string) *fedwire.Envelope {
		return &fedwire.Envelope{Id: newEnvelopeID("typ-"), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING,
			ConversationId: conv, Sender: sender, Typing: typing, Recipients: recipients}
	}
	if hub != self {
		if hub != except {
			f.sendSignal(hub, env(nil))
		}
		return
	}
	byDomain := map[string][]string{}
	for _, m := range members {
		if d := deviceDomain(m.Address); m.DeviceID == "" && d != "" && d != self && d != except && m.Address != sender {
			byDomain[d] = append(byDomain[d], m.Address)
		}
	}
	for d, recipients := range byDomain {
		f.sendSignal(d, env(recipients))
	}
}

// sendSignal posts one signal transaction in the background; it is
// dropped when maxSignalFlights are already in flight or the policy
// refuses the destination.
func (f *Signals) sendSignal(dest string, env *fedwire.Envelope) {
	f.sendSignals(dest, []*fedwire.Envelope{env})
}

// sendSignals posts signals to dest in one transaction, as sendSignal.
func (f *Signals) sendSignals(dest string, envs []*fedwire.Envelope) {
	if !f.policy.Allowed(dest) {
		return
	}
	select {
	case f.signals <- struct{}{}:
	default:
		return
	}
	go f.postSignals(dest, envs)
}

// sendSignalsWait is sendSignals that waits for a free flight until ctx
// ends instead of dropping the signals: presence repetitions to many
// servers must not be dropped for being many.
func (f *Signals) sendSignalsWait(ctx context.Context, dest string, envs []*fedwire.Envelope) {
	if !f.policy.Allowed(dest) {
		return
	}
	select {
	case f.signals <- struct{}{}:
	case <-ctx.Done():
		return
	}
	go f.postSignals(dest, envs)
}

// postSignals posts one signal transaction and frees its flight.
func (f *Signals) postSignals(dest string, envs []*fedwire.Envelope) {
	defer func() { <-f.signals }()
	ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
	defer cancel()
	txn := &fedwire.Transaction{Origin: f.domain, Destination: dest, TxnId: newEnvelopeID("sig-"),
		OriginTimeMs: f.nowMs(), Envelopes: envs}
	st, err := federation.SignSignals(f.pb.SigningKey(), txn)
	if err == nil {
		var res *fedwire.TransactionResult
		if res, err = f.client.Signal(ctx, dest, st); err == nil && res.GetCode() != fedwire.Code_CODE_OK {
			f.log.Debug("federation: signal refused", "destination", dest, "code", res.GetCode().String(), "message", res.GetMessage())
		}
	}
	if err != nil {
		f.log.Debug("federation: signal not sent", "destination", dest, "err", err)
	}
}

// ApplySignals answers a verified transaction from PathSignal.
func (f *Signals) ApplySignals(ctx context.Context, txn *fedwire.Transaction) *fedwire.TransactionResult {
	f.out.Contact(txn.Origin)
	res := &fedwire.TransactionResult{Code: fedwire.Code_CODE_OK}
	relays := map[string][]*fedwire.Envelope{} // presence relayed on, per destination
	for _, env := range txn.Envelopes {
		r := &fedwire.EnvelopeResult{Id: env.GetId(), Code: fedwire.Code_CODE_OK}
		var err error
		switch env.GetKind() {
		case fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE:
			err = f.applyPresence(ctx, txn.Origin, env, relays)
		default:
			err = f.applyTyping(ctx, txn.Origin, env)
		}
		if err != nil {
			r.Code, r.Message = federation.KindOf(err), err.Error()
		}
		res.Results = append(res.Results, r)
	}
	// One transaction per destination for what a batch (a repetition of
	// many users' states) makes this hub relay.
	for d, envs := range relays {
		for len(envs) > 0 {
			n := min(len(envs), maxSignalBatch)
			f.sendSignals(d, envs[:n])
			envs = envs[n:]
		}
	}
	return res
}

// applyTyping pushes one typing signal to this server's devices in the
// conversation and, at the hub, sends it on to the other servers.
func (f *Signals) applyTyping(ctx context.Context, origin string, env *fedwire.Envelope) error {
	const op = "homeserver.applyTyping"
	if env.GetKind() != fedwire.EnvelopeKind_ENVELOPE_KIND_TYPING {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_BAD_REQUEST, Msg: "only typing and presence travel on the signal path"}
	}
	if err := federation.CheckEnvelope(origin, f.domain, env); err != nil {
		return err
	}
	conv := env.GetConversationId()
	var members []storage.Member
	if err := f.db.Read(ctx, func(tx *storage.Tx) (err error) { members, err = tx.Members(conv); return err }); err != nil {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_INTERNAL, Msg: "read roster"}
	}
	hub, _ := federation.HubOf(conv) // CheckEnvelope parsed it
	hubHere := hub == f.domain
	var ids []string
	member := false
	for _, m := range members {
		if m.Address == env.GetSender() {
			member = true
		}
		if m.DeviceID == "" || m.Address == env.GetSender() {
			continue
		}
		if hubHere || slices.Contains(env.GetRecipients(), m.Address) {
			ids = append(ids, m.DeviceID)
		}
	}
	if hubHere && !member {
		return &federation.Error{Op: op, Kind: fedwire.Code_CODE_NOT_MEMBER, Msg: env.GetSender() + " is not a member of " + conv}
	}
	sender, _ := identity.ParseDevice(env.GetSender()) // CheckEnvelope parsed it
	ev := &wire.ServerFrame{Body: &wire.ServerFrame_Typing{Typing: &wire.TypingEvent{ConversationId: conv, User: sender.User.String(), Typing: env.GetTyping()}}}
	f.sessions.PushDevices(ids, ev)
	if hubHere {
		f.RelayTyping(conv, env.GetSender(), env.GetTyping(), members, origin)
	}
	return nil
}
