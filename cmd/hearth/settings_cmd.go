package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

// `chat settings`: this user's privacy settings, synced to its other
// devices end to end encrypted (client/settings.go, docs/receipts.md).
//
// Adding a setting: give it its values in the client (an init function
// setting client's settingValues["NAME"]), then append its command here
// from the adding file's init:
//
//	func init() {
//		settingsSubcommands = append(settingsSubcommands, settingCmd("NAME", "what it does"))
//	}
//
// (or a constructor of its own, for a setting that needs more than
// `chat settings NAME VALUE`, as settings_lastseen.go's last-seen, which
// the server keeps).
var settingsSubcommands = []func(env *chatEnv) *cobra.Command{
	settingCmd("read-receipts", `Send and see read receipts (off: in 1:1 conversations you neither send
read receipts nor see whether your messages were read; groups keep them)`),
	settingCmd("typing", `Send and see typing indicators (off: "chat typing" sends nothing and
"recv --signals" does not print others' typing)`),
}

func newChatSettingsCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "settings [NAME VALUE]",
		Short: "Print your settings, or change one (synced to your other devices)",
		Long: `Without arguments, print every setting as "NAME: VALUE" lines (with --json,
one object), last-seen included (asked of your server; left out, with a
warning, when it cannot be reached within --timeout). A change of
read-receipts or typing is kept on this device at once and sent, end-to-end
encrypted, to your other devices through your settings group (a group of
your own devices only, created by the first change); last-seen is kept by
your server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, 0, func(ctx context.Context, c *client.Client) error {
				if _, err := c.Account(); err != nil {
					return err
				}
				set, err := c.Settings()
				if err != nil {
					return err
				}
				lctx, cancel := timeoutContext(ctx, timeout)
				defer cancel()
				if v, err := c.LastSeen(lctx, ""); err == nil {
					set["last-seen"] = v
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "hearth: warning: last-seen not shown: %v\n", err)
				}
				w := cmd.OutOrStdout()
				if asJSON {
					b, err := json.Marshal(set)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(w, string(b))
					return err
				}
				names := make([]string, 0, len(set))
				for name := range set {
					names = append(names, name)
				}
				slices.Sort(names)
				for _, name := range names {
					kv(w, name, set[name])
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the settings as one JSON object {"NAME":"VALUE",...}`)
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up asking the server for last-seen after this long")
	for _, sub := range settingsSubcommands {
		cmd.AddCommand(sub(env))
	}
	return cmd
}

// settingCmd is `chat settings NAME VALUE` for a setting whose values the
// client knows.
func settingCmd(name, long string) func(env *chatEnv) *cobra.Command {
	return func(env *chatEnv) *cobra.Command {
		var timeout time.Duration
		values := client.SettingValues(name)
		cmd := &cobra.Command{
			Use:       name + " " + strings.Join(values, "|"),
			Short:     "Set " + name + " (" + strings.Join(values, " or ") + "; default " + values[0] + ")",
			Long:      long,
			Args:      cobra.ExactArgs(1),
			ValidArgs: values,
			RunE: func(cmd *cobra.Command, args []string) error {
				if !slices.Contains(values, args[0]) {
					return fmt.Errorf("%s must be %s, not %q", name, strings.Join(values, " or "), args[0])
				}
				return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
					if err := c.SetSetting(ctx, name, args[0]); err != nil {
						return err
					}
					kv(cmd.OutOrStdout(), name, args[0])
					return nil
				})
			},
		}
		cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up sending to your other devices after this long (the change holds on this device)")
		return cmd
	}
}
