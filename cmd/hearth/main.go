package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// subcommands is filled by each command file's init, so that files for
// init/serve/admin and for chat can be written independently.
var subcommands []func() *cobra.Command

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "hearth",
		Short:         "Hearth: federated end-to-end encrypted chat",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range subcommands {
		root.AddCommand(c())
	}
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hearth:", errorText(err, os.Args[1:]))
		os.Exit(1)
	}
}
