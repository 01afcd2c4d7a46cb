package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/store"
)

// Receipts from the command line: `chat read`, the ✓ marks of history,
// and receipt events of `recv --signals` (docs/receipts.md).

func newChatReadCmd(env *chatEnv) *cobra.Command {
	var upTo string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "read USER@DOMAIN|CONVERSATION [--up-to ID]",
		Short: "Mark a conversation's messages read (up to message ID) and send the read receipt",
		Long: `Mark the messages of the conversation read, up to and including message ID
(default: the last one this device holds). Your other devices learn it, and
so do the senders, unless read receipts are off in a 1:1 conversation
("chat settings read-receipts"). Prints "conversation: ID" and "read-up-to:
SEQ" (the conversation sequence; 0 when there is nothing to read) and exits 0
once the receipt was sent (at once when there is nothing new to tell); after
--timeout the receipt stays queued and the next send or recv sends it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, 0, func(ctx context.Context, c *client.Client) error {
				mark, err := c.MarkRead(args[0], upTo)
				if err != nil {
					return err
				}
				if mark.ReceiptID != "" {
					tctx, cancel := timeoutContext(ctx, timeout)
					defer cancel()
					if err := c.Flush(tctx, mark.ReceiptID); err != nil {
						if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
							return fmt.Errorf("marked read on this device; the receipt was not sent within %v and stays queued (sent by the next send or recv)", timeout)
						}
						if errors.Is(err, client.ErrSendLater) {
							return fmt.Errorf("marked read on this device; the receipt stays queued (sent by the next send or recv): %w", err)
						}
						return fmt.Errorf("marked read on this device; the receipt was not sent: %w", err)
					}
				}
				w := cmd.OutOrStdout()
				kv(w, "conversation", mark.Conversation)
				kv(w, "read-up-to", fmt.Sprint(mark.Seq))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&upTo, "up-to", "", "mark read up to and including this message id (default: the last message)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up sending (the receipt stays queued) after this long")
	return cmd
}

// utf8Output reports whether the locale is UTF-8: the first of LC_ALL,
// LC_CTYPE and LANG that is set names UTF-8 (as "UTF-8" or "utf8", in
// any case). Otherwise the ASCII marks are printed.
func utf8Output(getenv func(string) string) bool {
	for _, name := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(name); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// statusMark is the receipt mark printed after a message this user sent:
// ✓ sent, ✓✓ delivered (to every recipient), ✓✓ read (by every
// recipient); in ASCII "(sent)", "(delivered)", "(read)". A group message
// adds the counts: "delivered 2/4, read 1/4".
func statusMark(m store.Message, utf8 bool) string {
	if m.Status == "" {
		return ""
	}
	var s string
	switch m.Status {
	case "read":
		s = "✓✓ read"
	case "delivered":
		s = "✓✓"
	default:
		s = "✓"
	}
	if !utf8 {
		s = "(" + m.Status + ")"
	}
	if n := len(m.Recipients); n > 1 {
		s += fmt.Sprintf(" delivered %d/%d, read %d/%d", len(m.DeliveredTo), n, len(m.ReadBy), n)
	}
	return " " + s
}

// isUTF8 is utf8Output for this process's environment.
var isUTF8 = utf8Output(os.Getenv)

// printReceipt prints one receipt event of `recv --signals`.
func printReceipt(s client.Signal) map[string]any {
	return map[string]any{"event": "receipt", "conversation": s.Conversation, "message_ids": s.MessageIDs, "user": s.User, "kind": s.Kind}
}
