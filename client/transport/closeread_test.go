package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/wire"
)

// streamFrames is how many frames streamServer writes after the first
// frame it reads (more than a test reads before it closes).
const streamFrames = 400

// framePattern is the content of frame seq: 8 to 28 KB, different per seq.
func framePattern(seq uint64) []byte {
	b := make([]byte, 8000+int(seq%5)*5000)
	for i := range b {
		b[i] = byte(uint64(i)*7 + seq*13)
	}
	binary.BigEndian.PutUint64(b, seq)
	return b
}

// streamServer answers the first frame with a stream of large
// Deliveries, three per stream write, as a pusher draining a backlog does.
type streamServer struct{}

func (streamServer) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, remote string) {
	defer rwc.Close()
	var f wire.ClientFrame
	if err := wire.NewFrameReader(rwc, 0).ReadMessage(&f); err != nil {
		return
	}
	var buf []byte
	for i := uint64(0); i < streamFrames; i++ {
		m := &wire.ServerFrame{Body: &wire.ServerFrame_Delivery{Delivery: &wire.Delivery{Seq: i, ConversationId: "c@x", GroupInfo: framePattern(i)}}}
		buf, _ = wire.AppendFrame(buf, m)
		if i%3 == 2 {
			if _, err := rwc.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	rwc.Write(buf)
}

// TestCloseWhileReading: a session's reader goes on reading its stream
// while the session is closed (a device's session reset after its
// approval, a command that exits while deliveries arrive). Close reads
// what is left until the server's FIN; it must never take bytes from
// under that reader. It did: its drain took 8 KiB chunks between the
// reader's reads, and the reader read a frame whose end was the start of
// the frames behind it. The frame still decoded when the cut fell inside
// a large bytes field, and a Welcome's GroupInfo then failed to parse
// (docs/churn.md). Every frame the reader gets must be whole; its reads
// end with an I/O error, never a decode error.
func TestCloseWhileReading(t *testing.T) {
	ts := startServer(t, streamServer{}, false)
	for _, tc := range []struct {
		name string
		opts DialOptions
	}{
		{"quic", DialOptions{QUICOnly: true}},
		{"quic 0-RTT", DialOptions{QUICOnly: true, SessionCache: tls.NewLRUClientSessionCache(4)}},
		{"webtransport", DialOptions{WebTransportOnly: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.RootCAs = ts.roots
			for round := range 30 {
				c, err := Dial(testCtx(t), ts.addr, opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := wire.NewFrameWriter(c, 0).WriteMessage(&wire.ClientFrame{Id: 1, Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}); err != nil {
					t.Fatal(err)
				}
				got := make(chan int, 1)
				failed := make(chan error, 1)
				go func() {
					fr := wire.NewFrameReader(c, 0)
					for i := uint64(0); ; i++ {
						var f wire.ServerFrame
						err := fr.ReadMessage(&f)
						if err != nil {
							if strings.Contains(err.Error(), "decode frame") || errors.Is(err, wire.ErrFrameTooLarge) {
								failed <- err
							}
							got <- int(i)
							return
						}
						if d := f.GetDelivery(); d.GetSeq() != i || !bytes.Equal(d.GetGroupInfo(), framePattern(i)) {
							failed <- errors.New("a frame whose content is not what the server wrote")
							got <- int(i)
							return
						}
					}
				}()
				time.Sleep(time.Duration(round%6) * time.Millisecond) // frames flowing
				c.Close()
				n := <-got
				select {
				case err := <-failed:
					t.Fatalf("round %d: after %d whole frames: %v", round, n, err)
				default:
				}
			}
		})
	}
}
