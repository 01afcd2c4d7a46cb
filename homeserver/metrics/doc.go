// Package metrics exposes the homeserver's figures to Prometheus
// (github.com/prometheus/client_golang) on a listener of their own
// (`hearth serve --metrics HOST:PORT`).
//
// The hot path only adds to atomic counters it already keeps
// (homeserver.Stats, storage.DB.WriteStats) or observes one histogram
// value per committed write batch (Writer, a storage.CommitObserver);
// everything else (sessions by transport, mailbox backlog, federation
// queues and backoff per peer, media bytes) is read when Prometheus
// scrapes, by a Collector over the Sources the process wires in. The Go
// runtime and process collectors are registered too. docs/operations.md
// ("Monitoring") lists every metric; docs/grafana-dashboard.json shows
// them.
package metrics
