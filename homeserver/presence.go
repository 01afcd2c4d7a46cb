package homeserver

import (
	"sync"

	"hearth/homeserver/wire"
)

// Presence keeps each user's presence: this server's users' and the last
// known presence of users of other servers. MemoryPresence keeps it in
// this process; a multi-node mode replaces it (DESIGN.md "Scale-out seam").
type Presence interface {
	// Set records user's state, set at atMs. An ONLINE or AWAY state with
	// untilMs > 0 lapses at untilMs (Expire); 0 holds until the next Set.
	// It reports whether the state or atMs differ from the recorded ones.
	Set(user string, st wire.PresenceState, atMs, untilMs int64) (changed bool)
	// Get returns a user's state and when it was set; OFFLINE and 0 when
	// unknown.
	Get(user string) (st wire.PresenceState, atMs int64)
	// Expire records OFFLINE, set at their until (0 when their time was
	// 0: hidden), for the ONLINE and AWAY states whose until is at or
	// before nowMs, and returns them (as now recorded).
	Expire(nowMs int64) []PresenceRecord
	// Present returns the users recorded ONLINE or AWAY.
	Present() []PresenceRecord
}

// PresenceRecord is one user's recorded presence.
type PresenceRecord struct {
	User    string
	State   wire.PresenceState
	AtMs    int64
	UntilMs int64
}

// MemoryPresence is the in-memory Presence.
type MemoryPresence struct {
	mu sync.Mutex
	m  map[string]PresenceRecord
}

var _ Presence = (*MemoryPresence)(nil)

// NewMemoryPresence returns an empty presence table.
func NewMemoryPresence() *MemoryPresence { return &MemoryPresence{m: map[string]PresenceRecord{}} }

func present(st wire.PresenceState) bool {
	return st == wire.PresenceState_PRESENCE_STATE_ONLINE || st == wire.PresenceState_PRESENCE_STATE_AWAY
}

// Set records a user's state.
func (p *MemoryPresence) Set(user string, st wire.PresenceState, at, until int64) bool {
	if !present(st) {
		until = 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.m[user]
	p.m[user] = PresenceRecord{User: user, State: st, AtMs: at, UntilMs: until}
	return !ok || old.State != st || old.AtMs != at
}

// Get returns a user's state; OFFLINE when unknown.
func (p *MemoryPresence) Get(user string) (wire.PresenceState, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[user]
	if !ok {
		return wire.PresenceState_PRESENCE_STATE_OFFLINE, 0
	}
	return e.State, e.AtMs
}

// Expire turns lapsed ONLINE and AWAY states OFFLINE.
func (p *MemoryPresence) Expire(now int64) []PresenceRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PresenceRecord
	for u, e := range p.m {
		if present(e.State) && e.UntilMs > 0 && e.UntilMs <= now {
			at := e.UntilMs
			if e.AtMs == 0 {
				at = 0 // the user's server hides their last seen
			}
			e = PresenceRecord{User: u, State: wire.PresenceState_PRESENCE_STATE_OFFLINE, AtMs: at}
			p.m[u] = e
			out = append(out, e)
		}
	}
	return out
}

// Present returns the ONLINE and AWAY users.
func (p *MemoryPresence) Present() []PresenceRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PresenceRecord
	for _, e := range p.m {
		if present(e.State) {
			out = append(out, e)
		}
	}
	return out
}
