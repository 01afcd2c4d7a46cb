package homeserver

import (
	"context"
	"strings"
	"time"

	"hearth/homeserver/fedlink"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// The presence loop runs every PresenceConfig.Refresh. It turns lapsed
// ONLINE and AWAY states OFFLINE, telling who was told them: this
// server's users whose one-shot state's lease ran out, and users of other
// servers whose server stopped repeating their state (crashed, cut off).
// And it repeats this server's users' ONLINE and AWAY states to the
// servers sharing a conversation with them, which lets those states
// lapse 3 × Refresh after the last repetition arrived (presenceTTL).

// presenceTTL is how long a remote server holds this server's users'
// ONLINE and AWAY states after each repetition.
func (s *Server) presenceTTL() time.Duration {
	if s.cfg.Presence.Refresh <= 0 {
		return 0 // the receiver's default
	}
	return 3 * s.cfg.Presence.Refresh
}

func (s *Server) presenceLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Presence.Refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// A tick that cannot send all repetitions within one period
			// (many peers, slow ones) gives up the rest; Close ends it.
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Presence.Refresh)
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			s.presenceTick(ctx)
			cancel()
		}
	}
}

// presenceTick expires lapsed states and repeats the present ones.
func (s *Server) presenceTick(ctx context.Context) {
	suffix := "@" + s.cfg.Domain
	for _, r := range s.presence.Expire(s.nowMs()) {
		if name, ok := strings.CutSuffix(r.User, suffix); ok {
			s.leaseLapsed(ctx, name)
		} else if s.fed != nil {
			s.fed.Signals.Lapsed(r.User, r.AtMs)
		}
	}
	if s.fed == nil {
		return
	}
	var local []fedlink.LocalPresence
	present := s.presence.Present()
	err := s.db.Read(ctx, func(tx *storage.Tx) error {
		for _, r := range present {
			name, ok := strings.CutSuffix(r.User, suffix)
			if !ok {
				continue
			}
			u, err := tx.UserByName(name)
			if err != nil {
				continue // deleted since
			}
			ps, err := tx.PresenceSettings(u.ID)
			if err != nil {
				return err
			}
			_, at := viewPresence(r.State, r.AtMs, ps.LastSeen, storage.LastSeenEveryone, true, false)
			local = append(local, fedlink.LocalPresence{UserID: u.ID, User: r.User, State: r.State, AtMs: at})
		}
		return nil
	})
	if err != nil {
		s.log.Warn("presence: refresh", "err", err)
		return
	}
	s.fed.Signals.RefreshPresence(ctx, local, s.presenceTTL())
}

// leaseLapsed tells the contacts of a local user whose one-shot ONLINE
// or AWAY ran out (Expire recorded it OFFLINE) that it is offline, unless
// an active session holds the user by now.
func (s *Server) leaseLapsed(ctx context.Context, name string) {
	var u *storage.User
	if err := s.db.Read(ctx, func(tx *storage.Tx) (err error) { u, err = tx.UserByName(name); return err }); err != nil {
		return
	}
	s.changePresence(u.ID, name, wire.PresenceState_PRESENCE_STATE_OFFLINE, 0, nil, func() bool {
		st, _ := s.presence.Get(s.userAddress(name))
		return !s.reg.presenceHeld(u.ID) && st == wire.PresenceState_PRESENCE_STATE_OFFLINE
	})
}
