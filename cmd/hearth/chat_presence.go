package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

// presenceRefresh is how often `recv --follow --signals` asks the
// contacts' presence again (it asks once when it starts), so that a
// presence lost on the way (signals are lossy) is corrected; the server
// also pushes it on every reconnect.
const presenceRefresh = 2 * time.Minute

// newChatPresenceGetCmd is `chat presence get USER@DOMAIN...`.
func newChatPresenceGetCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "get USER@DOMAIN...",
		Short: "Print users' presence and last seen, as their settings allow",
		Long: `Print the presence (online, away, offline) and last seen of users of any
server, one line each: "USER STATE" and, when their setting and yours allow,
"last seen TIME" (for away and offline). STATE is "unknown" when the user
shares it with contacts only (or nobody) and you are not a contact. With --json:
{"user","state","last_seen"} per line ("last_seen" only when shown).`,
		Args: cobra.RangeArgs(1, 100),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				ps, err := c.GetPresence(ctx, args)
				if err != nil {
					return err
				}
				for _, p := range ps {
					printPresence(cmd.OutOrStdout(), p, asJSON)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `one JSON object per user: {"user","state","last_seen"}`)
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	return cmd
}

// printPresence prints one user's presence; the last seen only for away
// and offline (online has none) and only when shown.
func printPresence(w io.Writer, p client.Presence, asJSON bool) {
	seen := ""
	if !p.LastSeen.IsZero() && (p.State == "away" || p.State == "offline") {
		seen = p.LastSeen.UTC().Format(time.RFC3339)
	}
	if asJSON {
		obj := map[string]string{"user": p.User, "state": p.State}
		if seen != "" {
			obj["last_seen"] = seen
		}
		b, _ := json.Marshal(obj)
		fmt.Fprintln(w, string(b))
		return
	}
	if seen != "" {
		fmt.Fprintf(w, "%s %s last seen %s\n", p.User, p.State, seen)
		return
	}
	fmt.Fprintf(w, "%s %s\n", p.User, p.State)
}
