package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

func newChatDeviceCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Approve, list and revoke this user's devices"}
	var timeout time.Duration
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")

	approve := &cobra.Command{
		Use:   "approve CODE",
		Short: "Approve a pending device by the link code it shows",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				id, err := c.Approve(ctx, args[0])
				if err == nil {
					kv(cmd.OutOrStdout(), "approved", id)
				}
				return err
			})
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List this user's devices (* marks this one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var devs []client.Device
			err := env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) (err error) {
				devs, err = c.Devices(ctx)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var tw *tabwriter.Writer
			if !asJSON {
				tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				defer tw.Flush()
				fmt.Fprintln(tw, "  DEVICE\tSTATUS\tLIST\tCREATED\tNAME")
			}
			for _, d := range devs {
				if asJSON {
					b, _ := json.Marshal(map[string]any{"device": d.ID, "name": d.Name, "status": d.Status,
						"listed": d.Listed, "this": d.This, "created": d.Created})
					fmt.Fprintln(out, string(b))
					continue
				}
				mark := " "
				if d.This {
					mark = "*"
				}
				listed := "unlisted"
				if d.Listed {
					listed = "listed"
				}
				created := "-"
				if !d.Created.IsZero() {
					created = d.Created.UTC().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\n", mark, d.ID, d.Status, listed, created, d.Name)
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object per device")
	revoke := &cobra.Command{
		Use:   "revoke DEVICE",
		Short: "Revoke one of this user's other devices",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				err := c.Revoke(ctx, args[0])
				if err == nil {
					kv(cmd.OutOrStdout(), "revoked", args[0])
				}
				return err
			})
		},
	}
	cmd.AddCommand(approve, list, revoke)
	return cmd
}
