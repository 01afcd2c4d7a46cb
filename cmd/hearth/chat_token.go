package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

// newChatTokenCmd is `hearth chat token`: this device's short-lived access
// token for scripts calling the REST endpoints (docs/rest.md).
func newChatTokenCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	var minValid, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "token [--min-valid D] [--json]",
		Short: "Print this device's access token (refreshed when it expires within --min-valid) for REST calls",
		Long: `token prints this device's access token on standard output, alone on
its line, for scripts: curl -H "Authorization: Bearer $(hearth chat token --profile P)" ...
A token that expires within --min-valid is first refreshed with the server.
The token is short-lived (15 minutes by default) and grants what this device
may do: treat it as a password.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				tok, exp, err := c.AccessToken(ctx, minValid)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), struct {
						AccessToken string `json:"access_token"`
						ExpiresMs   int64  `json:"expires_ms"`
					}{tok, exp.UnixMilli()})
				}
				fmt.Fprintln(cmd.OutOrStdout(), tok)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&minValid, "min-valid", time.Minute, "refresh the token if it expires sooner than this")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"access_token","expires_ms"}`)
	return cmd
}
