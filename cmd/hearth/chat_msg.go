package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/store"
)

// timeoutContext bounds ctx by d (no bound when d <= 0).
func timeoutContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func newChatSendCmd(env *chatEnv) *cobra.Command {
	var timeout time.Duration
	var file sendFile // chat_media.go
	cmd := &cobra.Command{
		Use:   "send USER@DOMAIN (TEXT | - | --stdin | --file PATH [--type MIME])",
		Short: "Send TEXT to USER; exits 0 once the server durably accepted it",
		Long: `Queue TEXT for USER (or a group id) and send it, after what was queued
earlier to the same conversation; other conversations never hold it back.
Prints "id: ID" and exits 0 once the server accepted it. A message that can
never be sent (unknown user or domain, no longer a member of the group,
refused by policy) exits non-zero naming the recipient and the reason, and
stays in the outbox marked failed ("chat outbox list", "retry", "drop").
If --timeout passes first it exits non-zero and the message stays queued:
a later send, recv or "outbox retry" delivers it, exactly once.
TEXT "-" or --stdin reads the text from standard input (UTF-8, up to the
server's message limit less encryption overhead: about 248 KiB; one trailing
newline is dropped). An empty or whitespace-only text is refused.
With --file, the file is encrypted and uploaded first, then the message
referring to it is sent the same way.`,
		Args: file.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file.path != "" {
				return file.send(cmd, env, args[0], timeout)
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			text := ""
			if len(args) > 1 {
				text = args[1]
			}
			if file.stdin || text == "-" {
				if text, err = readText(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			id, err := c.Queue(args[0], text)
			if err != nil {
				return fmt.Errorf("not sent to %s: %w", args[0], err)
			}
			tctx, tcancel := timeoutContext(ctx, timeout)
			defer tcancel()
			if err := flushSent(cmd.OutOrStdout(), tctx, c, args[0], id, timeout); err != nil {
				return err
			}
			// After the message, in what is left of --timeout: an import
			// cut off there goes on with the next command, from where it
			// stopped (every command ends within its timeout).
			resumeHistory(tctx, cmd.ErrOrStderr(), c, false)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up (leaving the message queued) after this long")
	file.register(cmd)
	return cmd
}

// readText reads a message text from r: at most client.MaxBodyBytes (a
// longer one is refused whole), without one trailing newline.
func readText(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, client.MaxBodyBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the text from standard input: %w", err)
	}
	if len(b) > client.MaxBodyBytes {
		return "", fmt.Errorf("the text on standard input is over %d bytes; send it as a file (--file)", client.MaxBodyBytes)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}

// minConnectWait is the least time recv gives a connected server to make
// progress while catching up.
const minConnectWait = 5 * time.Second

// reachWait is the least time recv gives the server to be reached.
const reachWait = time.Second

// reach waits up to d for the session with the server. If the server
// cannot be reached it says so, and how many messages stay queued.
func reach(ctx context.Context, c *client.Client, d time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := c.Connect(rctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return err
	}
	msg := fmt.Sprintf("could not reach the server within %v; nothing received", d)
	if n, _ := queued(c); n > 0 {
		msg += fmt.Sprintf("; %s not sent yet, still queued (chat outbox list)", plural(n, "message"))
	}
	return errors.New(msg)
}

// plural is "1 message", "2 messages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// queued counts the outbox items that are waiting to be sent (not failed).
func queued(c *client.Client) (int, error) {
	items, err := c.Outbox()
	n := 0
	for _, it := range items {
		if it.Failed == "" && it.Body == nil { // receipts and settings are not messages
			n++
		}
	}
	return n, err
}

func newChatRecvCmd(env *chatEnv) *cobra.Command {
	var follow, asJSON, signals, markRead bool
	var refreshEvery time.Duration
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "recv [--follow] [--timeout DURATION] [--json]",
		Short: "Print received messages",
		Long: `Send anything still queued, then print received messages in arrival order
and acknowledge them. Exits after --timeout of silence unless --follow.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if refreshEvery <= 0 {
				return errors.New("--presence-refresh must be positive")
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			if !follow {
				// Once connected, catching up may take longer than
				// --timeout as long as it makes progress.
				env.connectWait = max(timeout, minConnectWait)
			}
			env.active = follow // only a following recv makes the user online
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if !follow {
				// A server that cannot be reached is silence: the whole
				// command ends within --timeout (at least reachWait).
				if err := reach(ctx, c, max(timeout, reachWait)); err != nil {
					return err
				}
			}
			// Flush also catches up and commits the leave requests of
			// groups this device administers, so it runs even when
			// nothing is queued.
			fctx, fcancel := timeoutContext(ctx, min(15*time.Second, max(timeout, minConnectWait)))
			err = c.Flush(fctx, "")
			fcancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			} else if n, _ := queued(c); err != nil && n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "hearth: warning: %s not sent yet, still queued (chat outbox list)\n", plural(n, "queued message"))
			}
			quiet := timeout
			if follow {
				quiet = 0
				go c.FlushEvery(ctx, 10*time.Second)
				go followHistory(ctx, cmd.ErrOrStderr(), c)
			} else {
				resumeHistory(ctx, cmd.ErrOrStderr(), c, false)
			}
			out := io.Writer(cmd.OutOrStdout())
			if signals {
				lw := &lineWriter{w: out}
				out = lw
				set, err := c.Settings()
				if err != nil {
					return err
				}
				typing := set["typing"] != "off" // off: others' typing is not shown either
				c.OnSignal(func(s client.Signal) {
					if s.Event != "typing" || typing {
						printSignal(lw, s, asJSON, c.GroupName)
					}
				})
				if follow {
					go c.RefreshPresenceEvery(ctx, refreshEvery)
				}
			}
			names := newEventNames(c)
			err = c.Receive(ctx, quiet, func(m store.Message) error {
				if err := printMessage(out, m, asJSON, names); err != nil {
					return err
				}
				if markRead && m.Event == "" {
					return c.MarkReadMessage(m)
				}
				return nil
			})
			if follow && errors.Is(err, context.Canceled) {
				return nil // interrupted
			}
			if err == nil {
				tellParked(cmd.ErrOrStderr(), c, names)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&follow, "follow", false, "keep printing until interrupted")
	f.BoolVar(&signals, "signals", false, `also print typing, presence and receipts as they arrive (JSON: "event":"typing"|"presence"|"receipt", "user", "conversation", "typing", "state", "message_ids", "kind")`)
	f.DurationVar(&refreshEvery, "presence-refresh", presenceRefresh, "with --follow --signals: ask the contacts' presence again this often (what datagrams lost is caught up)")
	f.MarkHidden("presence-refresh") // for tests: the default suits people
	f.BoolVar(&markRead, "mark-read", false, "mark what is printed read (sends read receipts), for clients that display what recv prints")
	f.DurationVar(&timeout, "timeout", 2*time.Second, "exit after this long without a new message")
	f.BoolVar(&asJSON, "json", false, `one JSON object per line: {"id","conversation","from","text","sent_at","seq"} plus "server_time" (sent_at is the sender's time), "event","user" for group changes and "media" {"id","sha256" (of the file, as sha256sum prints it),"ciphertext_sha256","size","type","name"} for files`)
	return cmd
}

func newChatHistoryCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "history USER@DOMAIN|CONVERSATION [--json] [--limit N]",
		Short: "Print a conversation as this device holds it, in conversation order",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return errors.New("--limit must not be negative")
			}
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Account(); err != nil {
				return err
			}
			if p, ok := c.PendingHistory(); ok {
				// The history from before this device's link is still to
				// import: try it now if it is due and the server answers.
				ctx, cancel := signalContext(cmd.Context())
				defer cancel()
				if !time.Now().Before(p.NextAt) && historyReachable(ctx, c) {
					resumeHistory(ctx, cmd.ErrOrStderr(), c, true)
				} else {
					tellPending(cmd.ErrOrStderr(), p)
				}
			}
			msgs, err := c.History(args[0], limit)
			if err != nil {
				return err
			}
			names := newEventNames(c)
			for _, m := range msgs {
				if err := printMessage(cmd.OutOrStdout(), m, asJSON, names); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `one JSON object per line, as recv --json prints, plus "status" ("sent"|"delivered"|"read"), "delivered_to", "read_by" and "recipients" on your own messages`)
	cmd.Flags().IntVar(&limit, "limit", 0, "print only the last N messages (0: all)")
	return cmd
}

func printMessage(w io.Writer, m store.Message, asJSON bool, names *eventNames) error {
	if asJSON {
		b, err := json.Marshal(shownMessage(m))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	if m.Event != "" {
		text := names.eventText(m)
		if text == "" {
			return nil
		}
		_, err := fmt.Fprintf(w, "%s #%d * %s\n", m.SentAt.Format(time.RFC3339), m.Seq, text)
		return err
	}
	text := m.Text
	if m.Media != nil {
		text = mediaText(m)
	}
	_, err := fmt.Fprintf(w, "%s #%d %s: %s%s\n", m.SentAt.Format(time.RFC3339), m.Seq, m.From, text, statusMark(m, isUTF8))
	return err
}

// flushSent flushes until the message id to `to` is accepted, then prints
// its id; otherwise the error names the recipient and the reason, or says
// the message stays queued.
func flushSent(w io.Writer, ctx context.Context, c *client.Client, to, id string, timeout time.Duration) error {
	err := c.Flush(ctx, id)
	switch {
	case err == nil:
		kv(w, "id", id)
		flushControls(ctx, c)
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("not sent to %s within %v%s; message %s stays queued and is sent by the next send, recv or outbox retry",
			to, timeout, lastTry(c, id), id)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted; message %s to %s stays queued and is sent by the next send, recv or outbox retry", id, to)
	case errors.Is(err, client.ErrSessionEnded):
		// This device can never send it (revoked, account disabled or
		// deleted): it does not stay queued.
		c.DropOutbox(id)
		return err
	case errors.Is(err, client.ErrIdentityChanged):
		return fmt.Errorf("not sent to %s: %s (message %s is kept as failed: after trusting, chat outbox retry %s)", to, identityChangedText(err), id, id)
	case errors.Is(err, client.ErrNotDelivered):
		return fmt.Errorf("not sent to %s: %s (message %s is kept as failed: chat outbox retry|drop %s)", to, reason(err), id, id)
	}
	return err
}

// flushControls sends the group control messages queued meanwhile (a
// group description forwarded to a device this send's commit added), so
// that they do not wait for the next send or recv; what does not go out
// within a few seconds stays queued.
func flushControls(ctx context.Context, c *client.Client) {
	items, err := c.Outbox()
	if err != nil {
		return
	}
	last := ""
	for _, it := range items {
		if it.Control != nil && it.Failed == "" {
			last = it.ID
		}
	}
	if last != "" {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c.Flush(fctx, last)
	}
}

// lastTry is the reason of the message's last failed try, if any.
func lastTry(c *client.Client, id string) string {
	items, err := c.Outbox()
	if err != nil {
		return ""
	}
	for _, it := range items {
		if it.ID == id && it.LastError != "" {
			return fmt.Sprintf(" (last try: %s, %d tries)", it.LastError, it.Attempts)
		}
	}
	return ""
}

// reason is the refusal of an undelivered message without the wrapping.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), client.ErrNotDelivered.Error()+": ")
}
