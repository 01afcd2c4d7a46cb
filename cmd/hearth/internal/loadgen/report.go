package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Report is every figure of one run. Rates are per second over the
// measured interval; counts are messages.
type Report struct {
	Workload string         `json:"workload"`
	Run      string         `json:"run"`
	Params   map[string]any `json:"params"`
	Machine  Machine        `json:"machine"`
	Setup    float64        `json:"setup_seconds"`
	Seconds  float64        `json:"seconds"` // measured interval: first send to last delivery (or hold)

	Sent       int     `json:"sent"`  // queued by the senders
	Acked      int     `json:"acked"` // acknowledged by the server (SendOK)
	Delivered  int     `json:"delivered"`
	Lost       int     `json:"lost"`         // acknowledged, never delivered
	Duplicates int     `json:"duplicates"`   // delivered more than once
	Unacked    int     `json:"unacked"`      // queued, not acknowledged when the run ended
	Foreign    int     `json:"foreign"`      // received, not from this run
	OutOfOrder int     `json:"out_of_order"` // arrived after a later message of the same sender
	SendErrors int     `json:"send_errors"`
	SentRate   float64 `json:"sent_per_second"`
	AckedRate  float64 `json:"acked_per_second"`
	DelivRate  float64 `json:"delivered_per_second"`

	Latency    Latency `json:"latency"`     // scheduled send → decrypted at the receiver
	AckLatency Latency `json:"ack_latency"` // scheduled send → SendOK at the sender
	// FanOut (group): scheduled send → the last member has the message.
	FanOut *Latency `json:"fan_out_latency,omitempty"`
	// ServerLatency (wire mode) and FanOutServer (wire mode, group): from the
	// server's acceptance of a message (its Delivery.server_time_ms, in
	// whole milliseconds: up to 1 ms more than the true figure) to each
	// delivery, and to the last member's. They leave out the sender's
	// queueing: what the server and the receivers' sessions take.
	ServerLatency *Latency `json:"server_latency,omitempty"`
	FanOutServer  *Latency `json:"fan_out_from_server,omitempty"`
	// SendLateness (open loop, pairs): how late the load generator queued
	// each message after its due time; the latencies above include it. A
	// large figure means the load generator itself was short of a core.
	SendLateness *Latency `json:"send_lateness,omitempty"`

	Server *ProcStats `json:"server,omitempty"` // nil: server PID unknown
	Bench  ProcStats  `json:"bench"`            // this process
	// CPUPerMessage divides each process's CPU time over the measured
	// interval by the messages delivered (nil: nothing delivered).
	CPUPerMessage *CPUPerMessage `json:"cpu_per_message,omitempty"`
	// Stages is the server's per-stage latency over the measured interval
	// (homeserver send stages, read from its admin status); nil: not known.
	Stages map[string]Latency `json:"server_stages,omitempty"`

	Backlog *BacklogFigures `json:"backlog,omitempty"`
	Idle    *IdleFigures    `json:"idle,omitempty"`
	Media   *MediaFigures   `json:"media,omitempty"`

	DialRetries int64 `json:"dial_retries"`
	// Transports counts the sessions opened by transport ("webtransport",
	// "websocket"); cmd/hearth fills it from its dialer and fails the run
	// when a session is not on the transport asked for.
	Transports map[string]int `json:"sessions_by_transport,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
}

// CPUPerMessage is CPU milliseconds per delivered message.
type CPUPerMessage struct {
	ServerMs float64 `json:"server_ms,omitempty"` // 0: server PID unknown
	BenchMs  float64 `json:"bench_ms"`            // the load generator
}

// cpuPerMessage fills r.CPUPerMessage from its process figures.
func (r *Report) cpuPerMessage() {
	if r.Delivered <= 0 {
		return
	}
	c := &CPUPerMessage{BenchMs: r.Bench.CPUSeconds * 1000 / float64(r.Delivered)}
	if r.Server != nil {
		c.ServerMs = r.Server.CPUSeconds * 1000 / float64(r.Delivered)
	}
	r.CPUPerMessage = c
}

// wireCPUNote warns when the load generator's CPU per message was not
// well below the server's: then it, not the server, may set the pace.
func (r *Report) wireCPUNote() {
	if c := r.CPUPerMessage; c != nil && c.ServerMs > 0 && c.BenchMs > c.ServerMs/2 {
		r.Notes = append(r.Notes, fmt.Sprintf("the load generator used %.3f ms of CPU per message, more than half the server's %.3f ms: "+
			"on a shared machine it may set the pace, not the server", c.BenchMs, c.ServerMs))
	}
}

// BacklogFigures are the backlog workload's results.
type BacklogFigures struct {
	Messages      int        `json:"messages"`
	StoreSeconds  float64    `json:"store_seconds"`
	StoreRate     float64    `json:"store_per_second"`
	DrainSeconds  float64    `json:"drain_seconds"` // receiver opens → last message delivered
	DrainRate     float64    `json:"drain_per_second"`
	InSyncSeconds float64    `json:"in_sync_seconds"` // same interval; "in sync" = every waiting message delivered
	ServerStore   *ProcStats `json:"server_store,omitempty"`
	ServerDrain   *ProcStats `json:"server_drain,omitempty"`
	BenchDrain    ProcStats  `json:"bench_drain"`
}

// IdleFigures are the idle workload's results.
type IdleFigures struct {
	Sessions         int     `json:"sessions"`
	OnlineSeen       int     `json:"online_sessions_seen"` // as the server reports them; -1: unknown
	RSSBeforeSetupMB float64 `json:"server_rss_before_setup_mb"`
	RSSBaselineMB    float64 `json:"server_rss_baseline_mb"` // after setup, sessions closed
	RSSHeldMB        float64 `json:"server_rss_held_mb"`
	KBPerSession     float64 `json:"server_kb_per_session"` // (held − before setup) / sessions
	KBPerSessionBase float64 `json:"server_kb_per_session_vs_baseline"`
	CPUPerSessionUs  float64 `json:"server_cpu_us_per_session_second"` // while held
	HoldSeconds      float64 `json:"hold_seconds"`
	RampSeconds      float64 `json:"reopen_seconds"` // reopening every session at the ramp
	// Freed are the figures taken after the server collected garbage and
	// returned freed memory to the OS (IdleParams.Memory); nil without it.
	Freed *IdleFreed `json:"after_free,omitempty"`
}

// IdleFreed is the server's memory at the baseline (sessions closed) and
// while the sessions are held, each read after a GC that returned the
// freed memory to the OS; per session: (held − baseline) / sessions.
type IdleFreed struct {
	RSSBaselineMB       float64 `json:"server_rss_baseline_mb"`
	RSSHeldMB           float64 `json:"server_rss_held_mb"`
	RSSBytesPerSession  float64 `json:"rss_bytes_per_session"`
	HeapBytesPerSession float64 `json:"heap_inuse_bytes_per_session"`
	// LiveBytesPerSession is the objects in that heap (HeapAlloc); the
	// rest of the heap in use is room that the set-up's short-lived
	// objects left in spans that also hold a session's.
	LiveBytesPerSession  float64 `json:"heap_live_bytes_per_session"`
	StackBytesPerSession float64 `json:"stack_inuse_bytes_per_session"`
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
}

// WriteJSON writes r as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteText writes r for people.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "workload %s  run %s  params %v\n", r.Workload, r.Run, r.Params)
	fmt.Fprintf(w, "machine  %d cpus  %s  %s  load %v -> %v\n", r.Machine.NumCPU, r.Machine.Model, r.Machine.GoVersion, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(w, "setup    %.1fs  measured %.2fs\n", r.Setup, r.Seconds)
	if r.Media == nil && (r.Sent > 0 || r.Delivered > 0) {
		fmt.Fprintf(w, "messages sent %d  acked %d  delivered %d  lost %d  duplicates %d  out of order %d  unacked %d  send errors %d  foreign %d\n",
			r.Sent, r.Acked, r.Delivered, r.Lost, r.Duplicates, r.OutOfOrder, r.Unacked, r.SendErrors, r.Foreign)
		fmt.Fprintf(w, "rates    sent %.0f/s  acked %.0f/s  delivered %.0f/s\n", r.SentRate, r.AckedRate, r.DelivRate)
		writeLatency(w, "latency ", r.Latency)
		writeLatency(w, "ack lat.", r.AckLatency)
		if r.FanOut != nil {
			writeLatency(w, "fan-out ", *r.FanOut)
		}
		if r.ServerLatency != nil {
			writeLatency(w, "srv→dev ", *r.ServerLatency)
		}
		if r.FanOutServer != nil {
			writeLatency(w, "srv→last", *r.FanOutServer)
		}
		if r.SendLateness != nil {
			writeLatency(w, "late    ", *r.SendLateness)
		}
	}
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "backlog  %d messages: stored in %.2fs (%.0f/s), drained in %.2fs (%.0f/s); in sync after %.2fs\n",
			b.Messages, b.StoreSeconds, b.StoreRate, b.DrainSeconds, b.DrainRate, b.InSyncSeconds)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "idle     %d sessions (server saw %d): server RSS %.1f MB before setup, %.1f MB baseline, %.1f MB held\n",
			i.Sessions, i.OnlineSeen, i.RSSBeforeSetupMB, i.RSSBaselineMB, i.RSSHeldMB)
		fmt.Fprintf(w, "         %.1f KB per session (vs before setup), %.1f KB (vs baseline); CPU %.1f µs per session-second\n",
			i.KBPerSession, i.KBPerSessionBase, i.CPUPerSessionUs)
		if f := i.Freed; f != nil {
			fmt.Fprintf(w, "         after GC and returning freed memory: RSS %.1f MB baseline, %.1f MB held: %.1f KB per session (heap %.1f KB of which live %.1f KB, stacks %.1f KB, %.1f goroutines)\n",
				f.RSSBaselineMB, f.RSSHeldMB, f.RSSBytesPerSession/1024, f.HeapBytesPerSession/1024, f.LiveBytesPerSession/1024, f.StackBytesPerSession/1024, f.GoroutinesPerSession)
		}
	}
	if m := r.Media; m != nil {
		fmt.Fprintf(w, "media    %d of %d files of %d bytes (%d encrypted) moved intact: upload %.2f MB/s, download %.2f MB/s\n",
			m.Files, r.Sent+r.SendErrors, m.FileBytes, m.SealedBytes, m.UploadMBps, m.DownloadMBps)
		writeSeconds(w, "upload  ", m.Upload)
		writeSeconds(w, "download", m.Download)
	}
	if s := r.Server; s != nil {
		writeProc(w, "server  ", *s)
	}
	writeProc(w, "bench   ", r.Bench)
	if c := r.CPUPerMessage; c != nil {
		fmt.Fprintf(w, "CPU per delivered message: server %.3f ms  bench %.3f ms\n", c.ServerMs, c.BenchMs)
	}
	writeStages(w, r.Stages)
	fmt.Fprintf(w, "dial retries %d  sessions by transport %v\n", r.DialRetries, r.Transports)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func writeLatency(w io.Writer, name string, l Latency) {
	fmt.Fprintf(w, "%s p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  (n=%d)\n",
		name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
}

func writeSeconds(w io.Writer, name string, l Latency) {
	fmt.Fprintf(w, "%s p50 %.2fs  max %.2fs  (n=%d)\n", name, l.P50/1000, l.Max/1000, l.Count)
}

func writeProc(w io.Writer, name string, p ProcStats) {
	fmt.Fprintf(w, "%s CPU %.2fs (%.2f cores)  RSS %.1f -> %.1f MB (peak %.1f)\n",
		name, p.CPUSeconds, p.CPUCores, p.RSSStartMB, p.RSSEndMB, p.RSSPeakMB)
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
