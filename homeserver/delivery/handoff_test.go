package delivery

import (
	"testing"
	"time"

	"hearth/storage"
)

func TestHandoffsBounded(t *testing.T) {
	var hs handoffs
	small := &storage.Entry{Payload: []byte("x")}
	for _, s := range []uint64{5, 3, 4, 3, 9} { // out of order, one twice
		if !hs.add(s, small, time.Time{}) {
			t.Fatalf("add %d refused", s)
		}
	}
	if got := hs.take(3, 10); len(got) != 3 || got[0].seq != 3 || got[2].seq != 5 {
		t.Fatalf("take 3..: %v", got)
	}
	if got := hs.take(6, 10); got != nil {
		t.Fatalf("take over a gap: %v", got)
	}
	hs.dropThrough(9)
	if len(hs.list) != 0 || hs.bytes != 0 {
		t.Fatalf("after drop: %v, %d bytes", hs.list, hs.bytes)
	}
	for s := range uint64(MaxHandoffs) {
		if !hs.add(s+1, small, time.Time{}) {
			t.Fatalf("add %d refused", s+1)
		}
	}
	if hs.add(MaxHandoffs+1, small, time.Time{}) {
		t.Fatal("more than MaxHandoffs kept")
	}
	hs.dropThrough(^uint64(0))
	big := &storage.Entry{Payload: make([]byte, MaxHandoffBytes/2), GroupInfo: make([]byte, 10)}
	if !hs.add(1, big, time.Time{}) || hs.add(2, big, time.Time{}) {
		t.Fatal("byte bound not applied")
	}
	if got := hs.take(1, 1); len(got) != 1 || hs.bytes != 0 {
		t.Fatalf("take: %v, %d bytes left", got, hs.bytes)
	}
}
