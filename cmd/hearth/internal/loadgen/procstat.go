package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of /proc/PID.
type procSample struct {
	at    time.Time
	cpu   time.Duration // user + system
	rssKB int64
}

// readProc reads CPU time and resident set size of pid (0: this process).
func readProc(pid int, now time.Time) (procSample, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return procSample{}, fmt.Errorf("loadgen: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("loadgen: /proc/%s/stat: unexpected format", p)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("loadgen: /proc/%s/stat: too few fields", p)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("loadgen: /proc/%s/stat: bad CPU times", p)
	}
	s := procSample{at: now, cpu: time.Duration(ut+st) * time.Second / clockTicks}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return procSample{}, fmt.Errorf("loadgen: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb := strings.Fields(v)
			if len(kb) > 0 {
				s.rssKB, _ = strconv.ParseInt(kb[0], 10, 64)
			}
		}
	}
	return s, nil
}

// ProcStats are one process's figures over a measured interval.
type ProcStats struct {
	PID        int     `json:"pid"` // 0: this process
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUCores   float64 `json:"cpu_cores"` // average cores busy over the interval
	RSSStartMB float64 `json:"rss_start_mb"`
	RSSEndMB   float64 `json:"rss_end_mb"`
	RSSPeakMB  float64 `json:"rss_peak_mb"`
}

// procWatch samples a process once a second to find its peak RSS.
type procWatch struct {
	pid   int
	start procSample
	mu    sync.Mutex
	peak  int64
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func watchProc(pid int, now func() time.Time) *procWatch {
	w := &procWatch{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	w.start, w.err = readProc(pid, now())
	w.peak = w.start.rssKB
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			if s, err := readProc(pid, now()); err == nil {
				w.mu.Lock()
				w.peak = max(w.peak, s.rssKB)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// current returns cores used since the start and RSS now (progress line).
func (w *procWatch) current(now time.Time) (cores float64, rssMB float64) {
	s, err := readProc(w.pid, now)
	if err != nil || w.err != nil {
		return 0, 0
	}
	if el := s.at.Sub(w.start.at); el > 0 {
		cores = s.cpu.Seconds() / el.Seconds()
		cores -= w.start.cpu.Seconds() / el.Seconds()
	}
	return cores, float64(s.rssKB) / 1024
}

// finish stops sampling and returns the interval's figures.
func (w *procWatch) finish(now time.Time) (ProcStats, error) {
	close(w.stop)
	<-w.done
	if w.err != nil {
		return ProcStats{}, w.err
	}
	end, err := readProc(w.pid, now)
	if err != nil {
		return ProcStats{}, err
	}
	ps := ProcStats{PID: w.pid, CPUSeconds: (end.cpu - w.start.cpu).Seconds(),
		RSSStartMB: mb(w.start.rssKB), RSSEndMB: mb(end.rssKB), RSSPeakMB: mb(max(w.peak, end.rssKB))}
	if el := end.at.Sub(w.start.at).Seconds(); el > 0 {
		ps.CPUCores = ps.CPUSeconds / el
	}
	return ps, nil
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// Machine describes where a run happened.
type Machine struct {
	NumCPU    int       `json:"nproc"`
	Model     string    `json:"cpu_model"`
	GoVersion string    `json:"go_version"`
	LoadStart []float64 `json:"loadavg_start"` // 1, 5, 15 minutes
	LoadEnd   []float64 `json:"loadavg_end"`
	// GCPercent is the bench process's GC target (GOGC; hearth bench sets
	// 400 unless GOGC is set), which its own CPU per message depends on.
	GCPercent int `json:"bench_gc_percent"`
}

func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadavg(), GCPercent: gcPercent()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.Model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}

func loadavg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

// gcPercent reads the process's GC target (GOGC, or what SetGCPercent set).
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int(s[0].Value.Uint64())
}
