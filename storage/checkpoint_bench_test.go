package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCheckpointInterval runs the writer's part of 1:1 traffic as the
// server sees it: Sends as the hub does (sendLikeHub, 100 two-device
// conversations) in transactions of 16, and each receiving device's
// cumulative ack of what the transaction before delivered to it (an ack
// deletes the mailbox rows and takes the log entries' references back),
// with the background checkpointer at 50 and at 250 ms. One op is one
// Send. cpu-µs/send is the whole process's CPU: the checkpointer runs
// beside the writer, so ns/op leaves its share out. ckpts/s counts the
// background checkpoints. A checkpoint copies the latest copy of every
// page written since the one before and fsyncs the database file; the
// pages every transaction rewrites (heads, the log's and the indexes'
// last leaves) are copied once per checkpoint.
func BenchmarkCheckpointInterval(b *testing.B) {
	for _, iv := range []time.Duration{50 * time.Millisecond, 250 * time.Millisecond} {
		b.Run(fmt.Sprint("interval=", iv), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "hearth.db"), Options{CheckpointInterval: iv})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			const convs = 100
			ids := make([][]string, convs)
			for i := range ids {
				ids[i] = fixture(b, db, fmt.Sprint("p", i), 2)
			}
			payload := make([]byte, 300)
			heads := map[string]uint64{} // what each device was sent
			acked := map[string]uint64{}
			ctx := context.Background()
			runs0 := db.ckpt.runs.Load()
			cpu0 := processCPU(b)
			start := time.Now()
			b.ResetTimer()
			for n := 0; n < b.N; {
				var waits []func() error
				for dev, h := range heads {
					if h > acked[dev] {
						waits = append(waits, db.SubmitAck(ctx, dev, h))
						acked[dev] = h
					}
				}
				k := min(16, b.N-n)
				mustWrite(b, db, func(tx *Tx) error {
					for j := range k {
						c, from := (n+j)%convs, (n+j)/convs%2
						if err := sendLikeHub(tx, fmt.Sprintf("p%d@x", c), ids[c][from], fmt.Sprint("m", n+j), payload, int64(n+j)); err != nil {
							return err
						}
					}
					return nil
				})
				for j := range k {
					c, from := (n+j)%convs, (n+j)/convs%2
					heads[ids[c][1-from]]++
				}
				for _, w := range waits {
					if err := w(); err != nil {
						b.Fatal(err)
					}
				}
				n += k
			}
			b.StopTimer()
			runs := db.ckpt.runs.Load() - runs0
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/send")
			b.ReportMetric(float64(runs)/time.Since(start).Seconds(), "ckpts/s")
		})
	}
}

// processCPU returns the CPU time (user and system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
