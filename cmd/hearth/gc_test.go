package main

import (
	"runtime/debug"
	"testing"

	"github.com/spf13/cobra"
)

// TestClientGC: the client commands run with clientGCPercent unless GOGC
// is set, in which case Go's own reading of it stands.
func TestClientGC(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	for _, name := range []string{"chat", "bench"} {
		var cmd *cobra.Command
		for _, c := range newRoot().Commands() {
			if c.Name() == name {
				cmd = c
			}
		}
		if cmd == nil || cmd.PersistentPreRun == nil {
			t.Fatalf("%s: no client GC set-up", name)
		}
		t.Setenv("GOGC", "")
		debug.SetGCPercent(100)
		cmd.PersistentPreRun(cmd, nil)
		if p := debug.SetGCPercent(100); p != clientGCPercent {
			t.Errorf("%s without GOGC: GC percent %d, want %d", name, p, clientGCPercent)
		}
		t.Setenv("GOGC", "150")
		debug.SetGCPercent(150)
		cmd.PersistentPreRun(cmd, nil)
		if p := debug.SetGCPercent(100); p != 150 {
			t.Errorf("%s with GOGC=150: GC percent %d", name, p)
		}
	}
}
