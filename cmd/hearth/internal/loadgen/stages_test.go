package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"hearth/homeserver/admin"
)

// TestStageReport: the report gives each stage's interval between the
// mark and the end; a server that restarted in between (counts went down)
// is reported since its restart, with an error saying so.
func TestStageReport(t *testing.T) {
	var live admin.LatencyRecorder
	live.Observe(time.Second) // before the run
	f := &Fleet{cfg: Config{Stages: func(context.Context) (map[string]admin.Histogram, error) {
		return map[string]admin.Histogram{admin.StageReceiveToCommit: live.Snapshot()}, nil
	}}}
	f.markStages()
	for range 10 {
		live.Observe(2 * time.Millisecond)
	}
	st, err := f.stageReport()
	if err != nil {
		t.Fatal(err)
	}
	l := st[admin.StageReceiveToCommit]
	if l.Count != 10 || l.P99 < 2 || l.P99 > 2.5 || l.Max > 2.5 {
		t.Errorf("interval %+v, want 10 values of 2ms (the 1s one before the mark left out)", l)
	}

	f.markStages()
	live = admin.LatencyRecorder{} // restarted
	live.Observe(3 * time.Millisecond)
	st, err = f.stageReport()
	if err == nil || !strings.Contains(err.Error(), "restarted") {
		t.Errorf("a restart not noticed: %v", err)
	}
	if l := st[admin.StageReceiveToCommit]; l.Count != 1 {
		t.Errorf("after a restart: %+v, want the 1 value since", l)
	}
}
