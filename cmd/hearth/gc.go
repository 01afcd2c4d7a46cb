package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// clientGCPercent is the GC target of the client commands (chat, bench)
// when GOGC is not set. A client's live heap is a few MB, so Go's default
// (GOGC=100, with its 4 MB minimum goal) collects about ten times a
// second under load; at 400 a client spends 12–22 % less CPU per message
// for about 20 MB more RSS with 40 simulated devices (docs/benchmarks.md,
// "Client side: allocation, per-message reads and decodes"). The server
// (`hearth serve`) keeps Go's default: its memory per idle session is a
// target of its own.
const clientGCPercent = 400

// clientGC sets clientGCPercent for a client command unless GOGC is set.
func clientGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(clientGCPercent)
	}
}

// withClientGC makes cmd and its subcommands run with clientGC.
func withClientGC(cmd *cobra.Command) *cobra.Command {
	cmd.PersistentPreRun = func(*cobra.Command, []string) { clientGC() }
	return cmd
}
