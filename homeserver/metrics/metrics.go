package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Counters are running totals since the server started.
type Counters struct {
	Accepted, Delivered uint64
	Refused             map[string]uint64 // by wire code name
	WriterBatches       uint64            // transactions committed
	WriterRequests      uint64            // write requests they carried
}

// Figures are totals read from the database at scrape time.
type Figures struct {
	MailboxBacklog, FederationQueue, MediaBytes, MediaFiles int64
}

// Peer is one federation peer's outbound queue.
type Peer struct {
	Domain        string
	QueueDepth    int
	Attempts      int   // consecutive failed attempts
	NextAttemptMs int64 // 0: not backing off
}

// Stage is one stage's latency histogram since the server started.
type Stage struct {
	Count   uint64
	Sum     float64            // seconds
	Buckets map[float64]uint64 // upper bound in seconds -> values at or below it
}

// Sources are where the Collector reads; a nil function is skipped.
type Sources struct {
	Counters func() Counters
	Sessions func() map[string]int // open client sessions by transport
	Figures  func(ctx context.Context) (Figures, error)
	Peers    func(ctx context.Context) ([]Peer, error)
	Stages   func() map[string]Stage // a message's stages through the server, by name
	Now      func() time.Time
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 5 * time.Second

var (
	descSessions  = prometheus.NewDesc("hearth_sessions", "Open client sessions (control streams) by transport.", []string{"transport"}, nil)
	descAccepted  = prometheus.NewDesc("hearth_messages_accepted_total", "Sends of local devices committed by this server as the conversation's hub.", nil, nil)
	descDelivered = prometheus.NewDesc("hearth_messages_delivered_total", "Mailbox entries pushed to local devices' sessions.", nil, nil)
	descRefused   = prometheus.NewDesc("hearth_requests_refused_total", "Error answers on client sessions by wire code.", []string{"code"}, nil)
	descBatches   = prometheus.NewDesc("hearth_storage_transactions_total", "Write transactions (group commits) committed.", nil, nil)
	descRequests  = prometheus.NewDesc("hearth_storage_write_requests_total", "Write requests carried by the committed transactions.", nil, nil)
	descBacklog   = prometheus.NewDesc("hearth_mailbox_backlog", "Mailbox entries not yet acknowledged by their device.", nil, nil)
	descFedQueue  = prometheus.NewDesc("hearth_federation_queue_envelopes", "Envelopes waiting to be sent to peer servers, all peers.", nil, nil)
	descPeerQueue = prometheus.NewDesc("hearth_federation_peer_queue_depth", "Envelopes waiting for one peer server.", []string{"peer"}, nil)
	descPeerFails = prometheus.NewDesc("hearth_federation_peer_failed_attempts", "Consecutive failed sends to one peer (0: healthy).", []string{"peer"}, nil)
	descPeerWait  = prometheus.NewDesc("hearth_federation_peer_backoff_seconds", "Time until the next attempt to a peer that is backed off (0: none).", []string{"peer"}, nil)
	descMedia     = prometheus.NewDesc("hearth_media_bytes", "Bytes of complete media stored.", nil, nil)
	descMediaN    = prometheus.NewDesc("hearth_media_files", "Complete media stored.", nil, nil)
	descScrapeErr = prometheus.NewDesc("hearth_scrape_errors", "Database reads that failed during this scrape (figures then missing).", nil, nil)
	descStage     = prometheus.NewDesc("hearth_send_stage_seconds", "Latency of a message's stages through the server (receive_to_commit, commit_to_push, …).", []string{"stage"}, nil)
)

// Collector reads Sources at scrape time.
type Collector struct{ src Sources }

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over src.
func NewCollector(src Sources) *Collector {
	if src.Now == nil {
		src.Now = time.Now
	}
	return &Collector{src: src}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descAccepted, descDelivered, descRefused, descBatches, descRequests,
		descBacklog, descFedQueue, descPeerQueue, descPeerFails, descPeerWait, descMedia, descMediaN, descScrapeErr, descStage} {
		ch <- d
	}
}

// Collect reads the sources.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.src.Sessions != nil {
		for kind, n := range c.src.Sessions() {
			gauge(descSessions, float64(n), kind)
		}
	}
	if c.src.Counters != nil {
		k := c.src.Counters()
		counter(descAccepted, k.Accepted)
		counter(descDelivered, k.Delivered)
		counter(descBatches, k.WriterBatches)
		counter(descRequests, k.WriterRequests)
		for code, n := range k.Refused {
			counter(descRefused, n, code)
		}
	}
	if c.src.Stages != nil {
		for name, st := range c.src.Stages() {
			ch <- prometheus.MustNewConstHistogram(descStage, st.Count, st.Sum, st.Buckets, name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := 0
	if c.src.Figures != nil {
		if f, err := c.src.Figures(ctx); err == nil {
			gauge(descBacklog, float64(f.MailboxBacklog))
			gauge(descFedQueue, float64(f.FederationQueue))
			gauge(descMedia, float64(f.MediaBytes))
			gauge(descMediaN, float64(f.MediaFiles))
		} else {
			failed++
		}
	}
	if c.src.Peers != nil {
		if ps, err := c.src.Peers(ctx); err == nil {
			now := c.src.Now().UnixMilli()
			for _, p := range ps {
				gauge(descPeerQueue, float64(p.QueueDepth), p.Domain)
				gauge(descPeerFails, float64(p.Attempts), p.Domain)
				gauge(descPeerWait, float64(max(p.NextAttemptMs-now, 0))/1000, p.Domain)
			}
		} else {
			failed++
		}
	}
	gauge(descScrapeErr, float64(failed))
}

// Writer observes the storage writer's batches (storage.CommitObserver):
// one histogram observation each, no allocation.
type Writer struct {
	batch, commit, fsync prometheus.Histogram
}

// NewWriter returns a Writer whose histograms are registered on reg.
func NewWriter(reg prometheus.Registerer) *Writer {
	w := &Writer{
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_storage_batch_requests",
			Help: "Write requests per committed transaction (the group-commit factor).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_storage_commit_seconds",
			Help: "Write transaction time, BEGIN to the end of COMMIT.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_storage_fsync_seconds",
			Help: "COMMIT alone: with synchronous=FULL, the WAL write and its fsync.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	reg.MustRegister(w.batch, w.commit, w.fsync)
	return w
}

// ObserveCommit records one committed batch.
func (w *Writer) ObserveCommit(requests int, total, commit time.Duration) {
	w.batch.Observe(float64(requests))
	w.commit.Observe(total.Seconds())
	w.fsync.Observe(commit.Seconds())
}

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
