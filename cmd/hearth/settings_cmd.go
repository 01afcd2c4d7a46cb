package main

import "github.com/spf13/cobra"

// `chat settings`: this user's settings. Each setting adds its own
// subcommand's constructor to settingsSubcommands from its file's init
// (settings_lastseen.go).
var settingsSubcommands []func(env *chatEnv) *cobra.Command

func newChatSettingsCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Show or change your settings",
	}
	for _, f := range settingsSubcommands {
		cmd.AddCommand(f(env))
	}
	return cmd
}
