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

	var yes, noHistory bool
	var historyDays int
	approve := &cobra.Command{
		Use:   "approve CODE|QR-TEXT|FILE.png",
		Short: "Approve a pending device by the link code it shows",
		Long: `Approve a pending device of this user. The argument is the link code the
new device prints, the text of its QR code (hearth-link:USER:CODE, pasted)
or the path of a PNG image of the QR code (login --qr-png, a screenshot).
The device's name and key fingerprint are shown first; on a terminal the
command asks for confirmation (--yes skips it; the answer may take up to
5 minutes beyond --timeout). When standard input is not a terminal the
device is approved without asking, as scripts expect: the code itself
carries the fingerprint of the device's key, which is checked.
Unless --no-history, the new device also gets this device's history of
the last --history-days days (0: all): an archive encrypted like a file
sent, uploaded, and its key sealed into the approval for that device only;
it imports it before its login reports "status: active". A large
history may need a longer --timeout (the export and upload count in it).
If the new device's import fails, it is still active; its next send,
recv or history tries again, with backoff, until the archive expires.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ask := !yes && isTerminal(cmd.InOrStdin())
			t := timeout
			if ask && t > 0 {
				t += 5 * time.Minute
			}
			return env.withClient(cmd, t, func(ctx context.Context, c *client.Client) error {
				a, err := c.Account()
				if err != nil {
					return err
				}
				code, err := linkCodeArg(args[0], a.User)
				if err != nil {
					return err
				}
				var hist *client.HistoryOptions
				if !noHistory {
					if historyDays < 0 {
						return fmt.Errorf("--history-days %d: want 0 (all) or more", historyDays)
					}
					hist = &client.HistoryOptions{Days: historyDays, Progress: func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "hearth: "+s) }}
				}
				id, err := c.ApproveWithHistory(ctx, code, func(p client.PendingDevice) error {
					w := cmd.ErrOrStderr()
					fmt.Fprintf(w, "new device:  %s (%q)\nfingerprint: %s\n", p.ID, p.Name, p.Fingerprint)
					if !ask {
						return nil
					}
					return askYes(ctx, cmd.InOrStdin(), w, "Does the new device show this fingerprint, and approve it?")
				}, hist)
				if err == nil {
					kv(cmd.OutOrStdout(), "approved", id)
				}
				return err
			})
		},
	}
	approve.Flags().BoolVar(&yes, "yes", false, "approve without asking for confirmation")
	approve.Flags().BoolVar(&noHistory, "no-history", false, "do not send the new device this device's history")
	approve.Flags().IntVar(&historyDays, "history-days", 90, "send the history of the last N days (0: all)")
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
