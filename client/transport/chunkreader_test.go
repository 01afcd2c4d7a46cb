package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// TestChunkReaderStopWhileReading: a reader reads a stream of numbered
// 8-byte words arriving in chunks of varied size while the stream is
// stopped and drained (Close in the browser). What it read must be a whole
// prefix of the stream (no chunk missing from the middle), and its reads
// end with errReadClosed or io.EOF.
func TestChunkReaderStopWhileReading(t *testing.T) {
	for round := range 300 {
		chunks := make(chan []byte, 4)
		go func() { // the pump
			defer close(chunks)
			var word uint64
			for i := range 400 {
				c := make([]byte, 8*(1+i%7))
				for k := 0; k < len(c); k += 8 {
					binary.BigEndian.PutUint64(c[k:], word)
					word++
				}
				chunks <- c
			}
		}()
		r := newChunkReader(chunks)
		done := make(chan error, 1)
		go func() {
			var want uint64
			var w [8]byte
			for {
				if _, err := io.ReadFull(r, w[:]); err != nil {
					if errors.Is(err, errReadClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
						done <- nil
					} else {
						done <- err
					}
					return
				}
				if got := binary.BigEndian.Uint64(w[:]); got != want {
					done <- errors.New("a word is missing: the reader's bytes are not a prefix of the stream")
					return
				}
				want++
			}
		}()
		time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
		r.stop()
		r.drain(time.Second)
		if err := <-done; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
