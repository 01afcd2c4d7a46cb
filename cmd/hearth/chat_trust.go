package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

func newChatSafetyCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "safety-number USER@DOMAIN",
		Short: "Show the safety number to compare with USER (in person or on a call)",
		Long: `Print the safety number of you and USER: 60 digits that USER's device shows
too when both of you hold each other's real identity keys. Compare them in
person or on a call. When USER's identity key changed (USER reset the account,
or someone impersonates them), the number with the key this device trusts and
the one with the key USER's server presents now are both printed; after
comparing the new one with USER, accept it with "hearth chat trust USER".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				s, err := c.SafetyNumber(ctx, args[0])
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				kv(w, "user", s.User)
				switch {
				case s.Pinned == "" || s.Pinned == s.Current:
					kv(w, "safety-number", s.Current)
				default:
					kv(w, "safety-number", s.Pinned)
					kv(w, "new-safety-number", s.Current)
					kv(w, "changed", s.User+"'s identity key changed: compare new-safety-number with "+s.User+
						", then accept it with: hearth chat trust "+s.User)
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func newChatTrustCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	var number string
	cmd := &cobra.Command{
		Use:   "trust USER@DOMAIN [--safety-number \"NNNNN ...\"]",
		Short: "Accept the identity key USER's server presents now (after comparing safety numbers)",
		Long: `Trust the identity key USER's server presents now in place of the one this
device pinned, after you compared the safety number ("hearth chat
safety-number USER") with USER. With --safety-number, the key is accepted
only if its safety number is that one (so a key that changed again since is
refused). Prints the safety number of the key now trusted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				n, err := c.Trust(ctx, args[0], number)
				if err != nil {
					return err
				}
				kv(cmd.OutOrStdout(), "trusted", args[0])
				kv(cmd.OutOrStdout(), "safety-number", n)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&number, "safety-number", "", "accept the key only if its safety number is this one")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}
