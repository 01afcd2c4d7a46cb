package transport

import (
	"testing"
	"time"
)

func TestTicketIssued(t *testing.T) {
	at := time.UnixMilli(1795766400123)
	got, ok := ticketIssuedAt([][]byte{[]byte("quic-go…"), ticketIssued(at)})
	if !ok || !got.Equal(at) {
		t.Fatalf("ticketIssuedAt = %v, %v; want %v", got, ok, at)
	}
	if _, ok := ticketIssuedAt([][]byte{[]byte(ticketPrefix + "short")}); ok {
		t.Error("a malformed entry gave a time")
	}
}

// FuzzTicketIssuedAt: the issue-time entry of a session ticket is read
// without panicking whatever the entries hold.
func FuzzTicketIssuedAt(f *testing.F) {
	f.Add([]byte(nil), []byte(ticketPrefix+"\x00\x00\x01\x9a\x00\x00\x00\x00"))
	f.Add([]byte("x"), []byte(ticketPrefix+"\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if ts, ok := ticketIssuedAt([][]byte{a, b}); ok && ts.UnixMilli() < 0 {
			t.Fatalf("negative time %v", ts)
		}
	})
}
