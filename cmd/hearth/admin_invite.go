package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/homeserver/admin"
)

// newAdminInviteCmd is `hearth admin invite …`: invite codes with which
// people create their own account (`hearth chat login --invite CODE`).
// The server keeps only a hash of each code: create prints the code once,
// list shows its first group (PREFIX) and an ID to revoke it by.
func newAdminInviteCmd(env *adminEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "invite", Short: "Manage invite codes for self-registration"}
	cmd.AddCommand(newAdminInviteCreateCmd(env), newAdminInviteListCmd(env), newAdminInviteRevokeCmd(env))
	return cmd
}

func newAdminInviteCreateCmd(env *adminEnv) *cobra.Command {
	var uses int
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create [--uses N] [--expires DURATION]",
		Short: `Issue an invite code and print "invite: CODE" (shown only this once)`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				inv, err := c.InviteCreate(ctx, uses, expires)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				kv(out, "invite", inv.Code)
				kv(out, "id", fmt.Sprint(inv.ID))
				kv(out, "uses", fmt.Sprint(inv.Uses))
				kv(out, "expires", fmtMs(inv.ExpiresMs))
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&uses, "uses", 1, "how many accounts the code can create")
	cmd.Flags().DurationVar(&expires, "expires", 168*time.Hour, "how long the code stays valid")
	return cmd
}

func newAdminInviteListCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List invites: id, code prefix, uses left, expiry, state (full codes are not kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				is, err := c.InviteList(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), is)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPREFIX\tUSES LEFT\tEXPIRES\tSTATE\tCREATED")
				for _, i := range is {
					fmt.Fprintf(tw, "%d\t%s-…\t%d/%d\t%s\t%s\t%s\n", i.ID, i.Prefix, i.UsesLeft, i.Uses, fmtMs(i.ExpiresMs), i.State, fmtMs(i.CreatedMs))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func newAdminInviteRevokeCmd(env *adminEnv) *cobra.Command {
	var id int64
	cmd := &cobra.Command{
		Use:   "revoke CODE | revoke --id ID",
		Short: "Revoke an invite by its code, or by the ID that list shows",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code := ""
			if len(args) == 1 {
				code = args[0]
			}
			if (code == "") == (id == 0) {
				return errors.New("give either an invite CODE or --id ID")
			}
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				if err := c.InviteRevoke(ctx, code, id); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "invite revoked")
				return nil
			})
		},
	}
	cmd.Flags().Int64Var(&id, "id", 0, "revoke the invite with this ID (from invite list) instead of by code")
	return cmd
}
