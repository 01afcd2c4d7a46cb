package session

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"hearth/homeserver/wire"
)

// FuzzSignalDatagram: datagrams come from the network; decoding one must
// never panic, and only typing and presence pushes (one, or a list)
// reach OnSignal.
func FuzzSignalDatagram(f *testing.F) {
	for _, fr := range []*wire.ServerFrame{
		{Body: &wire.ServerFrame_Typing{Typing: &wire.TypingEvent{ConversationId: "c@a.example", User: "alice@a.example", Typing: true}}},
		{Body: &wire.ServerFrame_Presence{Presence: &wire.PresenceEvent{User: "bob@b.example", State: wire.PresenceState_PRESENCE_STATE_AWAY}}},
		{Body: &wire.ServerFrame_PresenceList{PresenceList: &wire.PresenceList{Presence: []*wire.PresenceEvent{
			{User: "bob@b.example", State: wire.PresenceState_PRESENCE_STATE_OFFLINE, LastActiveMs: 5}}}}},
		{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: 1}}},
		{Id: 7, Body: &wire.ServerFrame_Typing{Typing: &wire.TypingEvent{}}},
	} {
		b, _ := proto.Marshal(fr)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got *wire.ServerFrame
		s := &Session{cfg: Config{OnSignal: func(f *wire.ServerFrame) { got = f }}}
		s.signalDatagram(b)
		if got == nil {
			return
		}
		if got.GetId() != 0 || (got.GetTyping() == nil && got.GetPresence() == nil && got.GetPresenceList() == nil) {
			t.Fatalf("OnSignal got %v", got)
		}
	})
}
