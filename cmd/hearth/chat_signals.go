package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

// Typing and presence from the command line: `chat typing`, `chat
// presence`, and `recv --signals` to print what others signal.

func newChatTypingCmd(env *chatEnv) *cobra.Command {
	var stop bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "typing USER@DOMAIN|CONVERSATION [--stop]",
		Short: "Tell the conversation's online members that you are typing (or stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				err := c.Typing(ctx, args[0], !stop)
				if errors.Is(err, client.ErrTypingOff) {
					fmt.Fprintln(cmd.ErrOrStderr(), "hearth:", err, "- nothing sent")
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&stop, "stop", false, "say you stopped typing")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	return cmd
}

func newChatPresenceCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "presence online|away|offline",
		Short: "Set your presence for the users you share a conversation with (get: ask others')",
		Long: `Set your presence for the users you share a conversation with. Other
commands do not change it, except recv --follow, which makes you online
while it runs. Set by this command while no recv --follow of yours runs,
online or away lasts 5 minutes (the server's presence.lease), then you are
offline. "presence get USER@DOMAIN..." asks the presence of users.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				return c.SetPresence(ctx, args[0])
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	cmd.AddCommand(newChatPresenceGetCmd(env)) // chat_presence.go
	return cmd
}

// lineWriter serializes whole lines from the receive loop and the
// session's signal callback.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// printSignal prints one typing or presence push or receipt event: JSON
// objects carry "event" ("typing", "presence" or "receipt"), "user", and
// "conversation" and "typing", or "state" and "last_active", or
// "conversation", "message_ids" and "kind".
func printSignal(w io.Writer, s client.Signal, asJSON bool, groupName func(string) (string, bool)) {
	if s.Event == "receipt" {
		if asJSON {
			b, _ := json.Marshal(printReceipt(s))
			fmt.Fprintln(w, string(b))
		} else {
			fmt.Fprintf(w, "* %s: %s %d message(s) in %s\n", s.User, s.Kind, len(s.MessageIDs), s.Conversation)
		}
		return
	}
	if asJSON {
		obj := map[string]any{"event": s.Event, "user": s.User}
		if s.Event == "typing" {
			obj["conversation"], obj["typing"] = s.Conversation, s.Typing
		} else {
			obj["state"] = s.State
			if s.LastActiveMs > 0 {
				obj["last_active"] = time.UnixMilli(s.LastActiveMs).UTC().Format(time.RFC3339)
			}
		}
		b, _ := json.Marshal(obj)
		fmt.Fprintln(w, string(b))
		return
	}
	if s.Event == "typing" {
		what := "is typing"
		if !s.Typing {
			what = "stopped typing"
		}
		// A group is named; a direct conversation is the one with s.User.
		if name, ok := groupName(s.Conversation); ok {
			fmt.Fprintf(w, "* %s %s in the group %s\n", s.User, what, name)
		} else {
			fmt.Fprintf(w, "* %s %s\n", s.User, what)
		}
		return
	}
	fmt.Fprintf(w, "* %s is %s\n", s.User, s.State)
}
