package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hearth/homeserver"
	"hearth/homeserver/admin"
	"hearth/homeserver/metrics"
	"hearth/homeserver/transport"
	"hearth/storage"
)

// metricsAddr completes a --metrics value: a bare port ("9464" or
// ":9464") listens on 127.0.0.1, never on every interface.
func metricsAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if !strings.Contains(v, ":") {
		v = ":" + v
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("--metrics %q: want HOST:PORT or PORT: %w", v, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// startMetrics serves reg's /metrics on its own listener at addr until
// the returned stop is called.
func startMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go srv.Serve(ln)
	log.Info("metrics listener", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// metricsSources reads the homeserver, the database and the transport.
func metricsSources(hs *homeserver.Server, db *storage.DB, tr *transport.Server) metrics.Sources {
	return metrics.Sources{
		Counters: func() metrics.Counters {
			st := hs.Stats()
			b, r := db.WriteStats()
			return metrics.Counters{Accepted: st.Accepted, Delivered: st.Delivered, Refused: st.Refused, WriterBatches: b, WriterRequests: r,
				EarlyServed: st.EarlyServed, EarlyHeld: st.EarlyHeld}
		},
		Sessions: tr.SessionsByTransport,
		Stages: func() map[string]metrics.Stage {
			out := map[string]metrics.Stage{}
			for name, h := range hs.Stats().Stages {
				out[name] = promStage(h)
			}
			return out
		},
		Figures: func(ctx context.Context) (metrics.Figures, error) {
			f, err := hs.Figures(ctx)
			return metrics.Figures{MailboxBacklog: f.MailboxBacklog, FederationQueue: f.FederationQueue, MediaBytes: f.MediaBytes, MediaFiles: f.MediaFiles}, err
		},
		Peers: func(ctx context.Context) ([]metrics.Peer, error) {
			fi, err := hs.FederationList(ctx)
			if err != nil {
				return nil, err
			}
			ps := make([]metrics.Peer, 0, len(fi.Peers))
			for _, p := range fi.Peers {
				ps = append(ps, metrics.Peer{Domain: p.Domain, QueueDepth: p.QueueDepth, Attempts: p.Attempts, NextAttemptMs: p.NextAttemptMs})
			}
			return ps, nil
		},
	}
}

// promStage turns a stage histogram into Prometheus form, with fixed
// bounds at the powers of two from 16 µs to 32 s (edges of the
// histogram's own buckets, so each bound counts exactly the values below
// it).
func promStage(h admin.Histogram) metrics.Stage {
	st := metrics.Stage{Count: h.Count(), Sum: float64(h.SumUs) / 1e6, Buckets: map[float64]uint64{}}
	for e := 4; e <= 25; e++ {
		bound := uint64(1) << e
		var n uint64
		for i, c := range h.Counts {
			if lo, _ := admin.BucketBounds(i); lo < bound {
				n += c
			}
		}
		st.Buckets[float64(bound)/1e6] = n
	}
	return st
}

// statusOps adds what the transport knows (sessions by transport) to the
// homeserver's admin status; every other operation is the homeserver's.
type statusOps struct {
	*homeserver.Server
	tr *transport.Server
}

func (o statusOps) Status(ctx context.Context) (admin.Status, error) {
	st, err := o.Server.Status(ctx)
	if err == nil {
		st.SessionsByTransport = o.tr.SessionsByTransport()
		st.SignalDatagrams = o.Server.DatagramPushes()
		pk := o.tr.QUICPackets()
		st.QUICPacketsSent, st.QUICPacketsReceived = pk.Sent, pk.Received
	}
	return st, err
}

// commitObservers tells every observer of the storage writer.
type commitObservers []storage.CommitObserver

func (o commitObservers) ObserveCommit(requests int, total, commit time.Duration) {
	for _, x := range o {
		x.ObserveCommit(requests, total, commit)
	}
}

var (
	_ storage.CommitObserver = commitObservers(nil)
	_ storage.CommitObserver = (*admin.WriterStages)(nil)
)
