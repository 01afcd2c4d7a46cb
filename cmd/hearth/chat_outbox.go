package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/store"
)

func newChatOutboxCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Messages not sent yet: list, drop, retry",
	}
	cmd.AddCommand(newChatOutboxListCmd(env), newChatOutboxDropCmd(env), newChatOutboxRetryCmd(env))
	return cmd
}

// shownOutboxItem is one line of `chat outbox list --json`.
type shownOutboxItem struct {
	ID           string    `json:"id"`
	To           string    `json:"to"`
	Conversation string    `json:"conversation"` // "" while a first message creates it
	Text         string    `json:"text,omitempty"`
	File         string    `json:"file,omitempty"`
	State        string    `json:"state"`
	Reason       string    `json:"reason"`
	Attempts     int       `json:"attempts"`
	Created      time.Time `json:"created"`
}

func shownOutbox(it store.OutboxItem) shownOutboxItem {
	o := shownOutboxItem{ID: it.ID, To: it.To, Conversation: it.Conversation, Text: it.Text, State: client.OutboxState(it),
		Reason: it.Failed, Attempts: it.Attempts, Created: it.Created}
	if o.Reason == "" {
		o.Reason = it.LastError
	}
	if o.To == "" {
		o.To = it.Conversation
	}
	if it.Media != nil {
		o.File, o.Text = it.Media.Name, ""
	}
	if it.Control != nil {
		o.Text = "(group change)"
	}
	if k := client.OutboxBodyKind(it); k != "" {
		o.Text = "(" + k + ")"
	}
	return o
}

func newChatOutboxListCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the messages not sent yet: queued, sending or failed, with the reason of the last failure",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			items, err := c.Outbox()
			if err != nil {
				return err
			}
			return printOutbox(cmd.OutOrStdout(), items, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `one JSON object per line: {"id","to","conversation","text","state","reason","attempts","created"} ("file" instead of "text" for media)`)
	return cmd
}

func printOutbox(w io.Writer, items []store.OutboxItem, asJSON bool) error {
	if asJSON {
		for _, it := range items {
			b, err := json.Marshal(shownOutbox(it))
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(w, string(b)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTO\tSTATE\tATTEMPTS\tCREATED\tTEXT\tREASON")
	for _, it := range items {
		o := shownOutbox(it)
		text := o.Text
		if o.File != "" {
			text = "[file] " + o.File
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", o.ID, o.To, o.State, o.Attempts, o.Created.Format(time.RFC3339), short(text, 40), o.Reason)
	}
	return tw.Flush()
}

// short cuts s to n runes.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newChatOutboxDropCmd(env *chatEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "drop ID",
		Short: "Remove a queued or failed message from the outbox; it is never sent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.DropOutbox(args[0]); err != nil {
				return err
			}
			kv(cmd.OutOrStdout(), "dropped", args[0])
			return nil
		},
	}
}

func newChatOutboxRetryCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "retry ID [--timeout DURATION]",
		Short: "Send a failed or queued message again (same id); exits 0 once the server accepted it",
		Long: `Clear the failed mark of message ID and send it, under the same id, after
the messages queued before it in its conversation. Prints "id: ID" and exits 0
once the server accepted it; exits non-zero with the reason if it fails again
(it stays failed) or if --timeout passes first (it stays queued).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, 0, func(ctx context.Context, c *client.Client) error {
				id := args[0]
				items, err := c.Outbox()
				if err != nil {
					return err
				}
				to := id
				for _, it := range items {
					if it.ID == id {
						to = shownOutbox(it).To
					}
				}
				if err := c.RetryOutbox(id); err != nil {
					return err
				}
				tctx, cancel := timeoutContext(ctx, timeout)
				defer cancel()
				return flushSent(cmd.OutOrStdout(), tctx, c, to, id, timeout)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up (leaving the message queued) after this long")
	return cmd
}
