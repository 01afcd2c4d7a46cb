package homeserver

import (
	"context"
	"net/http"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/hub"
	"hearth/homeserver/keydir"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// FederationConfig tunes server-to-server traffic (docs/federation.md).
type FederationConfig = fedlink.Config

var (
	_ fedlink.Sessions  = sessionPusher{}
	_ fedlink.Directory = (*keydir.Directory)(nil)
	_ fedlink.Presence  = presenceLink{}
)

// wireHubAndFederation builds the hub and the key directory and, with a
// server key, the federation link on top of them: policy, then hub and
// directory, then link.
func (s *Server) wireHubAndFederation(key *serverkey.Key) error {
	cfg := s.cfg
	hcfg := hub.Config{Domain: cfg.Domain, EpochWindow: cfg.EpochWindow, MaxMembers: cfg.MaxMembers,
		MaxMessageBytes: cfg.MaxMessageBytes, MaxCommitBytes: cfg.MaxCommitBytes, UnverifiedCommits: cfg.UnverifiedCommits,
		FetchLists: s.fetchListsLater, Log: s.log}
	kcfg := keydir.Config{Domain: cfg.Domain, MaxKeyPackages: cfg.MaxKeyPackages}
	if key == nil {
		s.hub = hub.New(hcfg)
		s.dir = keydir.New(kcfg, s.db, s.now, nil)
		return nil
	}
	pol, err := fedlink.LoadPolicy(context.Background(), s.db)
	if err != nil {
		return err
	}
	hcfg.Federated, hcfg.Allowed = true, pol.Allowed
	s.hub = hub.New(hcfg)
	s.dir = keydir.New(kcfg, s.db, s.now, fedlink.DeviceListQueuer(cfg.Domain, s.now))
	fcfg := cfg.Federation
	fcfg.MaxMediaChunk = cfg.Media.MaxChunkBytes
	if fcfg.KeyDir == "" {
		fcfg.KeyDir = cfg.KeyDir
	}
	s.fed, err = fedlink.New(cfg.Domain, fcfg, fedlink.Deps{DB: s.db, Key: key, Hub: s.hub, Policy: pol,
		Notifier: s.router, Sessions: sessionPusher{s}, Dir: s.dir, Presence: presenceLink{s}, Media: s.mediaSt,
		Log: s.log, Now: s.now, Rand: s.rand})
	return err
}

// sessionPusher pushes federation's ephemeral frames to live sessions.
type sessionPusher struct{ s *Server }

func (p sessionPusher) PushDevices(ids []string, ev *wire.ServerFrame) {
	for _, o := range p.s.reg.sessionsOfDevices(ids) {
		o.pushEphemeral(ev)
	}
}

func (p sessionPusher) PushPresence(ids []int64, ev *wire.PresenceEvent) {
	var hiding map[int64]bool
	if ev.GetLastActiveMs() != 0 {
		err := p.s.db.Read(context.Background(), func(tx *storage.Tx) (err error) { hiding, err = tx.HidingLastSeen(ids); return err })
		if err != nil {
			p.s.log.Warn("presence: readers' settings", "err", err)
			return
		}
	}
	full := &wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: ev}}
	hidden := &wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: &wire.PresenceEvent{User: ev.User, State: ev.State}}}
	for _, o := range p.s.reg.sessionsOfUsers(ids) {
		if o.passive || o.status.Load() != int32(wire.DeviceStatus_DEVICE_STATUS_ACTIVE) {
			continue
		}
		if hiding[o.userID] {
			o.pushEphemeral(hidden)
		} else {
			o.pushEphemeral(full)
		}
	}
}

var errFedOff = wire.Errorf("homeserver.federation", wire.Code_CODE_UNAVAILABLE, "federation is not enabled on this server")

// FederationHandler serves /hearth/federation/v1/… and
// /.well-known/hearth/server; nil when federation is off.
func (s *Server) FederationHandler() http.Handler {
	if s.fed == nil {
		return nil
	}
	return s.fed.Handler()
}

// SetFederationAddress sets the address published in the key document
// (known once the transport listens).
func (s *Server) SetFederationAddress(addr string) {
	if s.fed != nil {
		s.fed.Peers.SetAddress(addr)
	}
}
