package client

import (
	"testing"

	"hearth/homeserver/wire"
)

// TestPresenceSignalsOnlyChanges: the contacts' list a session gets on
// every connect (and on each refresh) repeats known states; only what
// changed reaches OnSignal, so a lost push is made good and nothing is
// printed twice.
func TestPresenceSignalsOnlyChanges(t *testing.T) {
	c := &Client{}
	var got []Signal
	c.OnSignal(func(s Signal) { got = append(got, s) })
	ev := func(user string, st wire.PresenceState, at int64) *wire.PresenceEvent {
		return &wire.PresenceEvent{User: user, State: st, LastActiveMs: at}
	}
	list := func(evs ...*wire.PresenceEvent) *wire.ServerFrame {
		return &wire.ServerFrame{Body: &wire.ServerFrame_PresenceList{PresenceList: &wire.PresenceList{Presence: evs}}}
	}
	on, off := wire.PresenceState_PRESENCE_STATE_ONLINE, wire.PresenceState_PRESENCE_STATE_OFFLINE
	c.signal(list(ev("a@x", on, 1), ev("b@x", off, 2), ev("u@x", wire.PresenceState_PRESENCE_STATE_UNSPECIFIED, 0)))
	c.signal(&wire.ServerFrame{Body: &wire.ServerFrame_Presence{Presence: ev("a@x", on, 1)}}) // the same again
	c.signal(list(ev("a@x", on, 1), ev("b@x", off, 2)))                                       // a refresh: nothing new
	c.signal(list(ev("a@x", off, 5), ev("b@x", off, 2)))                                      // a's offline push was lost
	want := []string{"a@x online", "b@x offline", "a@x offline"}
	if len(got) != len(want) {
		t.Fatalf("signals %v, want %v", got, want)
	}
	for i, s := range got {
		if s.Event != "presence" || s.User+" "+s.State != want[i] {
			t.Fatalf("signal %d: %+v, want %s", i, s, want[i])
		}
	}
}
