package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCollectorReadsSources gathers a registry over fixed sources: every
// figure appears with its labels, a failing database read is counted,
// and the writer's histograms count observations.
func TestCollectorReadsSources(t *testing.T) {
	reg := NewRegistry()
	w := NewWriter(reg)
	figErr := error(nil)
	now := time.UnixMilli(10_000)
	reg.MustRegister(NewCollector(Sources{
		Counters: func() Counters {
			return Counters{Accepted: 5, Delivered: 7, Refused: map[string]uint64{"CODE_RATE_LIMITED": 2}, WriterBatches: 3, WriterRequests: 9}
		},
		Sessions: func() map[string]int { return map[string]int{"webtransport": 2, "websocket": 1} },
		Figures: func(context.Context) (Figures, error) {
			return Figures{MailboxBacklog: 4, FederationQueue: 6, MediaBytes: 100, MediaFiles: 1}, figErr
		},
		Peers: func(context.Context) ([]Peer, error) {
			return []Peer{{Domain: "b.example", QueueDepth: 6, Attempts: 2, NextAttemptMs: 12_500}}, nil
		},
		Stages: func() map[string]Stage {
			return map[string]Stage{"receive_to_commit": {Count: 3, Sum: 0.003, Buckets: map[float64]uint64{0.001: 2, 0.002: 3}}}
		},
		Now: func() time.Time { return now },
	}))
	w.ObserveCommit(4, 3*time.Millisecond, 2*time.Millisecond)
	want := map[string]float64{
		"hearth_messages_accepted_total": 5, "hearth_messages_delivered_total": 7, "hearth_storage_transactions_total": 3,
		"hearth_storage_write_requests_total": 9, "hearth_mailbox_backlog": 4, "hearth_federation_queue_envelopes": 6,
		"hearth_media_bytes": 100, "hearth_media_files": 1, "hearth_scrape_errors": 0,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want["hearth_sessions,transport=webtransport"] = 2
	want["hearth_sessions,transport=websocket"] = 1
	want["hearth_requests_refused_total,code=CODE_RATE_LIMITED"] = 2
	want["hearth_federation_peer_queue_depth,peer=b.example"] = 6
	want["hearth_federation_peer_failed_attempts,peer=b.example"] = 2
	want["hearth_federation_peer_backoff_seconds,peer=b.example"] = 2.5
	want["hearth_storage_batch_requests"] = 1
	want["hearth_storage_fsync_seconds"] = 1
	want["hearth_storage_commit_seconds"] = 1
	want["hearth_send_stage_seconds,stage=receive_to_commit"] = 3
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	figErr = errors.New("database closed")
	bad := prometheus.NewRegistry()
	bad.MustRegister(NewCollector(Sources{Figures: func(context.Context) (Figures, error) { return Figures{}, figErr }}))
	mfs, err = bad.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "hearth_scrape_errors" || mfs[0].Metric[0].Gauge.GetValue() != 1 {
		t.Errorf("with a failing read, gathered %v; want only hearth_scrape_errors 1", mfs)
	}
}

// TestDashboardNamesMetrics: every hearth_* metric the Grafana dashboard
// and docs/operations.md query is one this package exports.
func TestDashboardNamesMetrics(t *testing.T) {
	reg := NewRegistry()
	w := NewWriter(reg)
	w.ObserveCommit(1, time.Millisecond, time.Millisecond)
	reg.MustRegister(NewCollector(Sources{
		Counters: func() Counters { return Counters{Refused: map[string]uint64{"CODE_X": 1}} },
		Sessions: func() map[string]int { return map[string]int{"websocket": 0} },
		Figures:  func(context.Context) (Figures, error) { return Figures{}, nil },
		Peers:    func(context.Context) ([]Peer, error) { return []Peer{{Domain: "p"}}, nil },
		Stages:   func() map[string]Stage { return map[string]Stage{"s": {}} },
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	name := regexp.MustCompile(`\bhearth_[a-z_]+`)
	for _, doc := range []string{"../../docs/grafana-dashboard.json", "../../docs/operations.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(doc, ".json") && !json.Valid(b) {
			t.Fatalf("%s is not valid JSON", doc)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
			if !have[base] && !strings.HasSuffix(n, "_") {
				t.Errorf("%s names %s, which is not exported", doc, n)
			}
		}
	}
}
