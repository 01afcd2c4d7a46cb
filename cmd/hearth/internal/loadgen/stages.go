package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"hearth/homeserver/admin"
)

// Server stages: the homeserver keeps latency histograms of a message's
// way through it (admin.Status.SendStages, cumulative since it started);
// the run reads them when its measurement starts and when it ends and
// reports the difference per stage.

// stageOrder is the order stages are printed in.
var stageOrder = []string{admin.StageReceiveToCommit, admin.StageReceiveToWriter, admin.StageCommitToAck, admin.StageCommitToPush, admin.StageReceiveToPushRead,
	admin.StageWriterTransaction, admin.StageWriterFsync}

// markStages reads the server's stage histograms at the start of the
// measured interval (once per run: a later call keeps the first mark).
func (f *Fleet) markStages() {
	if f.cfg.Stages == nil || f.stageMark != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := f.cfg.Stages(ctx)
	if err != nil {
		f.stageErr = err
		return
	}
	f.stageMark = m
}

// stageReport returns each stage's latency since markStages.
func (f *Fleet) stageReport() (map[string]Latency, error) {
	if f.cfg.Stages == nil {
		return nil, nil
	}
	if f.stageErr != nil {
		return nil, f.stageErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now, err := f.cfg.Stages(ctx)
	if err != nil {
		return nil, err
	}
	before := f.stageMark
	f.stageMark = nil
	for name, h := range now {
		if h.Count() < before[name].Count() { // the server restarted: its histograms began again
			before = nil
			err = errors.New("the server restarted during the run: its stages cover the time since")
			break
		}
	}
	out := map[string]Latency{}
	for name, h := range now {
		out[name] = histLatency(h.Sub(before[name]))
	}
	return out, err
}

// histLatency summarizes a histogram like Summarize does a sample.
func histLatency(h admin.Histogram) Latency {
	return Latency{Count: int(h.Count()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Quantile(1)), Mean: ms(h.Mean())}
}

// writeStages prints the stage latencies, known stages first.
func writeStages(w io.Writer, st map[string]Latency) {
	if len(st) == 0 {
		return
	}
	names := slices.Clone(stageOrder)
	for n := range st {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	fmt.Fprintln(w, "server stages (histogram buckets: figures up to 25 % high):")
	for _, n := range names {
		if l, ok := st[n]; ok {
			writeLatency(w, fmt.Sprintf("  %-21s", n), l)
		}
	}
}
