package fedlink

import (
	"context"
	"errors"

	"hearth/federation"
	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// PeerAdd pins a peer: its address, the CA to trust, and the key document
// fetched from that address now.
func (f *Peers) PeerAdd(ctx context.Context, domain, address string, caPEM []byte) (admin.PeerInfo, error) {
	const op = "homeserver.FederationPeerAdd"
	if err := federation.ValidDomain(domain); err != nil || domain == f.domain {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_BAD_REQUEST, "invalid peer domain %q", domain)
	}
	p := federation.Peer{Domain: domain, Address: address, CAPEM: caPEM}
	doc, err := federation.FetchKeyDocument(ctx, p)
	if err != nil {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_UNAVAILABLE, "fetch key document from %s: %v", address, err)
	}
	if _, _, err := federation.ParseKeyDocument(doc, domain); err != nil {
		return admin.PeerInfo{}, wire.Errorf(op, wire.Code_CODE_BAD_SIGNATURE, "key document from %s: %v", address, err)
	}
	sp := &storage.FedPeer{Domain: domain, Address: address, CAPEM: caPEM, KeysJSON: doc, AddedMs: f.nowMs()}
	if err := f.db.Write(ctx, func(tx *storage.Tx) error { return tx.PutFedPeer(sp) }); err != nil {
		return admin.PeerInfo{}, wire.Internal(op, err)
	}
	if err := f.cachePeer(sp, f.now()); err != nil {
		return admin.PeerInfo{}, wire.Internal(op, err)
	}
	f.client.Reset(domain)
	f.out.Wake(domain)
	infos, err := f.List(ctx)
	if err != nil {
		return admin.PeerInfo{}, err
	}
	for _, pi := range infos.Peers {
		if pi.Domain == domain {
			return pi, nil
		}
	}
	return admin.PeerInfo{}, wire.Internal(op, errors.New("peer vanished"))
}

// List reports peers, queue depths, last contact and backoff.
func (f *Peers) List(ctx context.Context) (admin.FederationInfo, error) {
	const op = "homeserver.FederationList"
	var peers []*storage.FedPeer
	var depths map[string]int
	var pol *storage.FedPolicy
	err := f.db.Read(ctx, func(tx *storage.Tx) (err error) {
		if peers, err = tx.FedPeers(); err != nil {
			return err
		}
		if pol, err = tx.FedPolicy(); err != nil {
			return err
		}
		depths, err = tx.QueueDepths()
		return err
	})
	if err != nil {
		return admin.FederationInfo{}, wire.Internal(op, err)
	}
	info := admin.FederationInfo{Domain: f.domain, KeyID: string(f.SigningKey().ID()), Mode: string(federation.ModeOpen),
		Allow: pol.Allow, Deny: pol.Deny}
	if pol.Mode != "" {
		info.Mode = pol.Mode
	}
	status := map[string]federation.DestStatus{}
	for _, st := range f.out.Status() {
		status[st.Destination] = st
	}
	seen := map[string]bool{}
	add := func(domain, address string, pinned bool) {
		seen[domain] = true
		st := status[domain]
		pi := admin.PeerInfo{Domain: domain, Address: address, Pinned: pinned, QueueDepth: depths[domain],
			Attempts: st.Attempts, LastError: st.LastError, Sent: st.Sent, Expired: st.Expired}
		if !st.LastContact.IsZero() {
			pi.LastContactMs = st.LastContact.UnixMilli()
		}
		if !st.NextAttempt.IsZero() {
			pi.NextAttemptMs = st.NextAttempt.UnixMilli()
		}
		info.Peers = append(info.Peers, pi)
	}
	for _, p := range peers {
		add(p.Domain, p.Address, true)
	}
	for d := range depths {
		if !seen[d] {
			add(d, "", false)
		}
	}
	for d := range status {
		if !seen[d] {
			add(d, "", false)
		}
	}
	return info, nil
}

// SetPolicy changes the policy: op is "allow", "deny" or "mode".
func (f *Peers) SetPolicy(ctx context.Context, op, value string) error {
	const o = "homeserver.FederationPolicy"
	var write func(tx *storage.Tx) error
	var apply func()
	switch op {
	case "allow", "deny":
		if err := federation.ValidDomain(value); err != nil {
			return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "%v", err)
		}
		write = func(tx *storage.Tx) error { return tx.SetFedList(value, op) }
		apply = func() {
			if op == "allow" {
				f.policy.Allow(value)
			} else {
				f.policy.Deny(value)
			}
		}
	case "mode":
		m, err := federation.ParseMode(value)
		if err != nil {
			return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "%v", err)
		}
		write = func(tx *storage.Tx) error { return tx.SetFedMode(string(m)) }
		apply = func() { f.policy.SetMode(m) }
	default:
		return wire.Errorf(o, wire.Code_CODE_BAD_REQUEST, "unknown policy operation %q", op)
	}
	if err := f.db.Write(ctx, write); err != nil {
		return wire.Internal(o, err)
	}
	apply()
	return nil
}
