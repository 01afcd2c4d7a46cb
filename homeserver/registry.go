package homeserver

import (
	"sync"

	"hearth/homeserver/wire"
	"hearth/storage"
)

// registry is the Server's record of live streams and of the
// authenticated sessions by device and by user.
type registry struct {
	mu       sync.Mutex
	closed   bool
	live     map[*session]struct{} // every live stream, authenticated or not
	authed   int                   // authenticated sessions (session.registered)
	byDevice map[string]sessionList
	byUser   map[int64]sessionList // by user id
	streams  sync.WaitGroup        // live ServeStream calls
}

func newRegistry() *registry {
	return &registry{live: map[*session]struct{}{},
		byDevice: map[string]sessionList{}, byUser: map[int64]sessionList{}}
}

// close refuses new streams from now on; false if it was closed before.
func (r *registry) close() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.closed = true
	return true
}

// online is how many authenticated sessions there are.
func (r *registry) online() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.authed
}

// addStream records a new stream; false if the server is closed.
func (r *registry) addStream(ss *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.live[ss] = struct{}{}
	r.streams.Add(1)
	return true
}

func (r *registry) removeStream(ss *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[ss]; ok {
		delete(r.live, ss)
		r.streams.Done()
	}
}

// register adds an authenticated session to the registry.
func (r *registry) register(ss *session, d *storage.Device) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return wire.Errorf("homeserver.register", wire.Code_CODE_UNAVAILABLE, "server shutting down")
	}
	ss.deviceID, ss.userName, ss.userID = d.ID, d.UserName, d.UserID
	ss.registered = true
	r.authed++
	r.byDevice[ss.deviceID] = append(r.byDevice[ss.deviceID], ss)
	r.byUser[ss.userID] = append(r.byUser[ss.userID], ss)
	return nil
}

// unregister removes a session; it reports whether the user has no other
// live session left.
func (r *registry) unregister(ss *session) (lastOfUser bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ss.registered {
		return false
	}
	ss.registered = false
	r.authed--
	if l := r.byDevice[ss.deviceID].without(ss); len(l) == 0 {
		delete(r.byDevice, ss.deviceID)
	} else {
		r.byDevice[ss.deviceID] = l
	}
	if l := r.byUser[ss.userID].without(ss); len(l) > 0 {
		r.byUser[ss.userID] = l
		return false
	}
	delete(r.byUser, ss.userID)
	return true
}

// presenceHeld reports whether the user has a live session that holds
// its presence (an active session that went online, not a passive one).
func (r *registry) presenceHeld(userID int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ss := range r.byUser[userID] {
		if ss.presenceOn.Load() {
			return true
		}
	}
	return false
}

// sessionsOfDevices returns the live sessions of the given devices.
func (r *registry) sessionsOfDevices(ids []string) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*session
	for _, id := range ids {
		out = append(out, r.byDevice[id]...)
	}
	return out
}

// sessionsOfUsers returns the live sessions of the given users.
func (r *registry) sessionsOfUsers(ids []int64) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*session
	for _, n := range ids {
		out = append(out, r.byUser[n]...)
	}
	return out
}

// closeSessions ends every live session matching f: a SessionClosed push,
// then the stream is closed.
func (r *registry) closeSessions(f func(*session) bool, code wire.Code, msg string) {
	r.mu.Lock()
	var victims []*session
	for ss := range r.live {
		if f(ss) {
			victims = append(victims, ss)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.end(code, msg)
		}()
	}
	wg.Wait()
}

func (r *registry) closeDevice(deviceID string, code wire.Code, msg string) {
	r.closeSessions(func(ss *session) bool { return ss.deviceID == deviceID }, code, msg)
}

func (r *registry) closeUser(userID int64, code wire.Code, msg string) {
	r.closeSessions(func(ss *session) bool { return ss.userID == userID }, code, msg)
}

// sessionList holds the live sessions of one device or one user: nearly
// always one, so a slice (one 8-byte allocation per idle session) rather
// than a set (a map of its own, ≈ 130 bytes).
type sessionList []*session

// without returns l less ss, in l's own array.
func (l sessionList) without(ss *session) sessionList {
	for i, x := range l {
		if x == ss {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			return l[:len(l)-1]
		}
	}
	return l
}
