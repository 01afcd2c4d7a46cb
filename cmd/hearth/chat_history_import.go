package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"hearth/client"
)

// A newly linked device imports the history its approving device sent
// during login; when that fails (server unreachable, media fetch error,
// the process killed), the next send, recv or history tries again, with
// backoff, and says what happened on standard error.

// historyReach bounds how long `history` waits for the server before it
// tries a pending import (history itself reads only the profile).
const historyReach = 2 * time.Second

// resumeHistory tries the pending history import of c if it is due,
// telling w what happens. Nothing is printed when no import is pending or
// none is due, unless always.
func resumeHistory(ctx context.Context, w io.Writer, c *client.Client, always bool) {
	p, ok := c.PendingHistory()
	if !ok {
		return
	}
	if time.Now().Before(p.NextAt) {
		if always {
			tellPending(w, p)
		}
		return
	}
	c.OnHistoryProgress(func(s string) { fmt.Fprintln(w, "hearth: "+s) })
	defer c.OnHistoryProgress(nil)
	tried, err := c.ResumeHistory(ctx)
	if tried {
		tellHistoryResult(w, c, err)
	}
}

// tellHistoryResult says how an import attempt ended (nothing when it
// succeeded: its progress said so).
func tellHistoryResult(w io.Writer, c *client.Client, err error) {
	switch {
	case err == nil:
	case errors.Is(err, client.ErrHistoryExpired), errors.Is(err, client.ErrHistoryUnusable):
		fmt.Fprintf(w, "hearth: history: %s; this device's history starts at its link (the other device still has the older messages)\n", plainError(err))
	default:
		if p, ok := c.PendingHistory(); ok {
			tellPending(w, p)
		} else {
			fmt.Fprintf(w, "hearth: history: %s\n", plainError(err))
		}
	}
}

// tellPending says that the history is not imported yet and when it is
// tried again.
func tellPending(w io.Writer, p client.HistoryImport) {
	last := ""
	if p.LastError != "" {
		last = fmt.Sprintf(" (last try: %s; %s)", plainError(errors.New(p.LastError)), plural(p.Attempts, "attempt"))
	}
	when := ""
	if time.Now().Before(p.NextAt) {
		when = " from " + p.NextAt.Local().Format("15:04:05")
	}
	fmt.Fprintf(w, "hearth: history: the messages from before this device's link are not imported yet%s; "+
		"the next send, recv or history tries again%s (until %s)\n", last, when, p.Expires.Local().Format("2006-01-02"))
}

// followHistory retries a pending import while `recv --follow` runs,
// when it is due (client.FollowHistory sleeps in between, never polls).
func followHistory(ctx context.Context, w io.Writer, c *client.Client) {
	if _, ok := c.PendingHistory(); !ok {
		return
	}
	c.OnHistoryProgress(func(s string) { fmt.Fprintln(w, "hearth: "+s) })
	c.FollowHistory(ctx, func(err error) { tellHistoryResult(w, c, err) })
}

// historyReachable reports whether c reaches its server within
// historyReach, for `history` (which otherwise works offline).
func historyReachable(ctx context.Context, c *client.Client) bool {
	rctx, cancel := context.WithTimeout(ctx, historyReach)
	defer cancel()
	return c.Connect(rctx) == nil
}

// tellParked says which conversations hold deliveries back because a
// device list could not be fetched: they are kept, not lost, and come
// once the list can be checked (client.ParkedConversations).
func tellParked(w io.Writer, c *client.Client, names *eventNames) {
	ps, err := c.ParkedConversations()
	if err != nil {
		fmt.Fprintf(w, "hearth: warning: %s\n", plainError(err))
		return
	}
	for _, p := range ps {
		fmt.Fprintf(w, "hearth: %s: %s held since %s, waiting for a device list that cannot be fetched yet (%s); "+
			"they are kept and shown once it can be checked (tried again from %s)\n",
			names.conversation(p.Conversation), plural(p.Held, "update"), p.Since.Local().Format("15:04:05"),
			plainError(errors.New(p.Reason)), p.NextTry.Local().Format("15:04:05"))
	}
}
