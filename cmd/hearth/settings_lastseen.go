package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

func init() { settingsSubcommands = append(settingsSubcommands, newSettingsLastSeenCmd) }

// newSettingsLastSeenCmd is `chat settings last-seen [everyone|contacts|nobody]`:
// who may see this user's last seen. The server keeps and enforces it
// (docs/presence.md), so every device of the user has the same.
func newSettingsLastSeenCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "last-seen [everyone|contacts|nobody]",
		Short: "Show or set who may see when you were last online",
		Long: `Show or set who may see your last seen: everyone, contacts (the users you
share a conversation with) or nobody. As in WhatsApp it works both ways:
while you do not share your last seen with someone, you do not see theirs
(with "nobody" you see nobody's). Your contacts always see whether you are
online, away or offline; others only with "everyone". The server keeps the
setting, so it holds for all your devices. Prints "last-seen: VALUE".`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			who := ""
			if len(args) == 1 {
				who = args[0]
			}
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				v, err := c.LastSeen(ctx, who)
				if err != nil {
					return err
				}
				kv(cmd.OutOrStdout(), "last-seen", v)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	return cmd
}
