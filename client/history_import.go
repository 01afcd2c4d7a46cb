package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"hearth/client/account"
	"hearth/client/session"
	"hearth/client/store"
	"hearth/client/transfer"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// The import of a history archive on a newly approved device. The
// reference the approval carried is kept in the profile (historyPending,
// in the transaction that activates the device) until an import
// succeeded: an import that failed (server unreachable, media fetch
// error) or was cut off (the process killed) is tried again by the next
// command that calls ResumeHistory, with backoff, until it succeeds or
// the archive expired. Messages are added by (conversation, seq), so
// what a cut-off attempt added is not added twice.

const (
	// historyPendingMeta names the meta record of an archive not
	// imported yet.
	historyPendingMeta = "history-import"
	// historyKeep is how long after the approval an archive not imported
	// yet is tried: a homeserver's default media retention.
	historyKeep = 30 * 24 * time.Hour
	// historyStallDefault: an attempt that makes no progress this long
	// fails (and is tried again later), so that a server that went away
	// mid-import does not hold the command until its timeout.
	historyStallDefault = 30 * time.Second
	// historyBackoffMin and historyBackoffMax bound the wait between
	// attempts; it doubles with each attempt.
	historyBackoffMin = 5 * time.Second
	historyBackoffMax = 30 * time.Minute
)

// ErrHistoryExpired is wrapped when an archive not imported yet can no
// longer be: its media is gone from the server, or it is older than
// historyKeep. ErrHistoryUnusable is wrapped when the archive is not a
// usable one (corrupt, malformed, another user's). Both end the retries.
var (
	ErrHistoryExpired  = errors.New("the history archive expired on the server before it could be imported")
	ErrHistoryUnusable = errors.New("the history archive cannot be imported")
)

// ErrHistoryPending is wrapped by WaitApproval when this device is active
// but the history the approving device sent is not imported yet (it is
// kept for ResumeHistory).
var ErrHistoryPending = account.ErrHistoryPending

// historyPending is the meta record of an archive not imported yet.
type historyPending struct {
	Ref       json.RawMessage `json:"ref"`      // the media reference the approval carried
	Approved  time.Time       `json:"approved"` // when this device took the approval
	Attempts  int             `json:"attempts"`
	NextAt    time.Time       `json:"next_at"` // the earliest next attempt
	LastError string          `json:"last_error,omitempty"`
}

// HistoryImport describes an archive not imported yet (PendingHistory).
type HistoryImport struct {
	Attempts  int
	NextAt    time.Time // the earliest next attempt
	Expires   time.Time // no attempt after this
	LastError string
}

// historyBackoff is the wait after the n-th attempt.
func historyBackoff(n int) time.Duration {
	d := historyBackoffMin
	for i := 1; i < n && d < historyBackoffMax; i++ {
		d *= 2
	}
	return min(d, historyBackoffMax)
}

// historyImporter is the account's HistoryImporter.
type historyImporter struct{ c *Client }

var _ account.HistoryImporter = historyImporter{}

// Keep records ref as an archive to import, due at once.
func (h historyImporter) Keep(tx *store.Tx, ref []byte) error {
	raw, err := json.Marshal(historyPending{Ref: ref, Approved: h.c.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	return tx.PutMeta(historyPendingMeta, raw)
}

// Import makes the first attempt, during WaitApproval.
func (h historyImporter) Import(ctx context.Context) error { return h.c.importPending(ctx) }

func (c *Client) loadPending() (historyPending, bool, error) {
	var p historyPending
	var raw []byte
	if err := c.st.View(func(tx *store.Tx) error { raw = tx.Meta(historyPendingMeta); return nil }); err != nil {
		return p, false, err
	}
	if raw == nil {
		return p, false, nil
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, false, fmt.Errorf("client: history import record: %w", err)
	}
	return p, true, nil
}

func (c *Client) savePending(p historyPending) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.st.Update(func(tx *store.Tx) error { return tx.PutMeta(historyPendingMeta, raw) })
}

func (c *Client) dropPending() error {
	return c.st.Update(func(tx *store.Tx) error { return tx.DeleteMeta(historyPendingMeta) })
}

// PendingHistory reports the archive an approval sent this device that is
// not imported yet, if any.
func (c *Client) PendingHistory() (HistoryImport, bool) {
	p, ok, err := c.loadPending()
	if err != nil || !ok {
		return HistoryImport{}, false
	}
	return HistoryImport{Attempts: p.Attempts, NextAt: p.NextAt, Expires: p.Approved.Add(historyKeep), LastError: p.LastError}, true
}

// ResumeHistory tries the import of a pending archive (PendingHistory)
// if its next attempt is due, and reports whether it tried. The error is
// the attempt's: ErrHistoryExpired or ErrHistoryUnusable wrapped when it
// will not be tried again. Progress goes to OnHistoryProgress.
func (c *Client) ResumeHistory(ctx context.Context) (tried bool, err error) {
	p, ok, err := c.loadPending()
	if err != nil || !ok {
		return false, err
	}
	if c.cfg.Now().Before(p.NextAt) {
		return false, nil
	}
	return true, c.importPending(ctx)
}

// followRetryMin is the least wait between two attempts of FollowHistory
// (a record whose next attempt did not move, say after a store error).
const followRetryMin = time.Second

// FollowHistory retries a pending history import (PendingHistory) each
// time it is due, sleeping in between (no polling), until no import is
// pending (imported or given up) or ctx ends. each, when set, is told
// every attempt's outcome (ResumeHistory's error).
func (c *Client) FollowHistory(ctx context.Context, each func(error)) {
	var least time.Duration
	for {
		p, ok, err := c.loadPending()
		if err != nil || !ok {
			return
		}
		t := time.NewTimer(max(p.NextAt.Sub(c.cfg.Now()), least))
		least = followRetryMin
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if tried, err := c.ResumeHistory(ctx); tried && each != nil {
			each(err)
		}
	}
}

// importPending makes one attempt at the pending archive and records its
// outcome: done (the record goes), given up (expired or unusable: the
// record goes), or to be tried again after historyBackoff.
func (c *Client) importPending(ctx context.Context) error {
	p, ok, err := c.loadPending()
	if err != nil || !ok {
		return err
	}
	now := c.cfg.Now()
	if now.After(p.Approved.Add(historyKeep)) {
		c.dropPending()
		last := ""
		if p.LastError != "" {
			last = "; last try: " + p.LastError
		}
		return fmt.Errorf("%w (approved %s%s)", ErrHistoryExpired, p.Approved.Format(time.RFC3339), last)
	}
	// Counted before it runs: an attempt cut off by a kill waits its
	// backoff too, and a concurrent command does not start another.
	p.Attempts++
	p.NextAt = now.Add(historyBackoff(p.Attempts))
	if err := c.savePending(p); err != nil {
		return err
	}
	if p.Attempts > 1 {
		say(c.historyProgress, "history: importing the history the approving device sent (attempt %d)", p.Attempts)
	}
	err = c.importHistory(ctx, p.Ref)
	switch {
	case err == nil:
		return nil // importHistory dropped the record with the last batch
	case wire.Is(err, wire.Code_CODE_NOT_FOUND):
		c.dropPending()
		return fmt.Errorf("%w: %w", ErrHistoryExpired, err)
	case errors.Is(err, ErrHistoryUnusable):
		c.dropPending()
		return err
	}
	p.LastError = plainCause(err)
	p.NextAt = c.cfg.Now().Add(historyBackoff(p.Attempts))
	if ctx.Err() != nil {
		// The command's own time ran out or it was interrupted: not a
		// failure of the import, which goes on (from what is imported)
		// with the next command, without a longer wait.
		p.Attempts--
		p.NextAt = c.cfg.Now()
	}
	if serr := c.savePending(p); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// plainCause is err's text for the record the user is shown: a stall or
// an interruption in words, else the error.
func plainCause(err error) string {
	switch {
	case errors.Is(err, errHistoryStalled):
		return errHistoryStalled.Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, context.DeadlineExceeded):
		return "the command's time ran out"
	case errors.Is(err, session.ErrDisconnected):
		return "the connection to the server was lost"
	case wire.Is(err, wire.Code_CODE_INTERNAL):
		return "the server could not serve it (internal error)"
	case wire.Is(err, wire.Code_CODE_UNAVAILABLE):
		return "the server is unavailable"
	}
	return err.Error()
}

// errHistoryStalled ends an attempt that made no progress for the stall time.
var errHistoryStalled = errors.New("no progress (server unreachable?)")

// importHistory downloads the archive rawRef refers to and adds its
// messages to this device's history; the last transaction also drops the
// pending record. It ends with errHistoryStalled when nothing moved for
// the stall time.
func (c *Client) importHistory(ctx context.Context, rawRef []byte) error {
	const op = "client.ImportHistory"
	var ref store.MediaRef
	if err := json.Unmarshal(rawRef, &ref); err != nil {
		return fmt.Errorf("%s: %w: reference: %v", op, ErrHistoryUnusable, err)
	}
	if err := checkMediaRef(&ref); err != nil {
		return fmt.Errorf("%s: %w: %v", op, ErrHistoryUnusable, err)
	}
	a, err := c.acct.Account()
	if err != nil {
		return err
	}
	stall := c.cfg.HistoryStall
	if stall <= 0 {
		stall = historyStallDefault
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(errHistoryStalled) })
	defer watchdog.Stop()
	alive := func() { watchdog.Reset(stall) }

	say(c.historyProgress, "history: downloading %d bytes", ref.Size)
	// The archive is read as it is decrypted, which starts only once the
	// whole ciphertext matched its hash (transfer.Fetch), in constant memory.
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	shown := percent(c.historyProgress, "history: downloaded")
	go func() {
		err := c.media.FetchProgress(actx, ref, pw, func(done, total int64) {
			alive()
			if shown != nil {
				shown(done, total)
			}
		})
		pw.CloseWithError(err)
		fetched <- err
	}()
	h, added, skipped, err := c.importArchive(pr, a.User, alive)
	pr.CloseWithError(errors.New("history archive: import ended")) // a fetch still writing ends
	if ferr := <-fetched; ferr != nil && (err == nil || errors.Is(err, ferr)) {
		// The fetch failed, and the reader read its error.
		err = ferr
		if actx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(actx) // stalled
		}
	}
	if errors.Is(err, transfer.ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrHistoryUnusable, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if skipped > 0 {
		c.log.Warn("history archive: messages at a seq this device holds another message at were left out", "count", skipped)
	}
	say(c.historyProgress, "history: imported %s of %s", plural(added, "message"), plural(h.Conversations, "conversation"))
	return nil
}

// importArchive reads an archive from r and adds its messages in batches
// of historyBatch, each in one transaction; a message this device already
// holds is not added again, one whose seq holds another message is
// skipped (and counted). The last transaction records the archive's 1:1
// conversations by peer and drops the pending record. alive is called as
// batches are stored.
func (c *Client) importArchive(r io.Reader, user string, alive func()) (h historyHeader, added, skipped int, err error) {
	var batch []store.Message
	flush := func(last func(*store.Tx) error) error {
		err := c.st.Update(func(tx *store.Tx) error {
			for _, m := range batch {
				ok, err := tx.AddHistory(m)
				if errors.Is(err, store.ErrSeqTaken) {
					skipped++
					continue
				}
				if err != nil {
					return err
				}
				if ok {
					added++
				}
			}
			if last != nil {
				return last(tx)
			}
			return nil
		})
		batch = batch[:0]
		alive()
		return err
	}
	h, err = readHistoryArchive(r, user, func(m store.Message) error {
		if batch = append(batch, m); len(batch) >= historyBatch {
			if err := flush(nil); err != nil {
				return err
			}
			say(c.historyProgress, "history: imported %d of %d messages", added+skipped, h.Messages)
		}
		return nil
	})
	if err != nil {
		var fe fnError
		if errors.As(err, &fe) {
			return h, added, skipped, fe.err // the store's, not the archive's
		}
		return h, added, skipped, fmt.Errorf("%w: %w", ErrHistoryUnusable, err)
	}
	for user, ids := range h.Directs {
		if _, err := identity.ParseUser(user); err != nil || len(ids) == 0 {
			return h, added, skipped, fmt.Errorf("%w: bad 1:1 conversations of %q", ErrHistoryUnusable, user)
		}
	}
	err = flush(func(tx *store.Tx) error {
		for user, ids := range h.Directs {
			ids = append(importedDirects(tx, user), ids...)
			slices.Sort(ids)
			raw, _ := json.Marshal(slices.Compact(ids))
			if err := tx.PutMeta(importedDirectName(user), raw); err != nil {
				return err
			}
		}
		return tx.DeleteMeta(historyPendingMeta)
	})
	return h, added, skipped, err
}
