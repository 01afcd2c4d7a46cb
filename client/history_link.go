package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"hearth/client/account"
	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
)

// History on a new device (issue #14): the approving device exports the
// user's conversations as an archive, encrypts and uploads it as media
// (keys/media, the chunked format of every file), and seals the media
// reference, key included, into the approval bundle, which opens only on
// the new device (identity.Bundle.History). The new device downloads,
// checks and imports it once it is active, before login reports it so.

// historyFormat names the archive format: JSON lines, a historyHeader
// then the header's count of store.Message, each at most maxHistoryLine.
const historyFormat = "hearth-history-v1"

const (
	maxHistoryLine = 2 << 20 // a 256 KiB text JSON-escaped, with room
	historyBatch   = 500     // messages imported per transaction
	historyStep    = 10000   // messages exported between progress lines
	historyType    = "application/x-ndjson"
)

type historyHeader struct {
	Format        string    `json:"format"`
	User          string    `json:"user"`
	Since         time.Time `json:"since"`
	Conversations int       `json:"conversations"`
	Messages      int       `json:"messages"`
	// Directs lists the 1:1 conversations of the archive by peer, so that
	// `history USER` finds them on the new device before it received
	// anything (importedDirects).
	Directs map[string][]string `json:"directs,omitempty"`
}

// importedDirectName is the meta record of the 1:1 conversations with user
// that an imported archive holds.
func importedDirectName(user string) string { return "history-direct/" + user }

// importedDirects returns the 1:1 conversations with user that imported
// archives hold (see History).
func importedDirects(tx *store.Tx, user string) []string {
	var ids []string
	if raw := tx.Meta(importedDirectName(user)); raw != nil {
		json.Unmarshal(raw, &ids)
	}
	return ids
}

// HistoryOptions choose what an approval sends the new device.
type HistoryOptions struct {
	Days int // messages of the last Days days (0: all)
	// Progress, when set, is told what happens (counts and stages).
	Progress func(string)
}

// ApproveWithHistory is ApproveConfirm that also sends the new device an
// end-to-end encrypted archive of this device's history (opts), unless
// opts is nil.
func (c *Client) ApproveWithHistory(ctx context.Context, code string, confirm func(PendingDevice) error, opts *HistoryOptions) (string, error) {
	ao := account.ApproveOptions{Confirm: confirm}
	if opts != nil {
		ao.History = func(ctx context.Context, _ account.PendingDevice) ([]byte, error) { return c.exportHistory(ctx, *opts) }
	}
	return c.acct.ApproveWith(ctx, code, ao)
}

// OnHistoryProgress sets what the import of a history archive on this
// (new) device reports to, during WaitApproval.
func (c *Client) OnHistoryProgress(fn func(string)) { c.historyProgress = fn }

// percent turns byte counts into lines "PREFIX N%" for fn, one per 10%
// step; nil when fn is.
func percent(fn func(string), prefix string) func(done, total int64) {
	if fn == nil {
		return nil
	}
	last := int64(-1)
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		if p := done * 100 / total / 10 * 10; p > last {
			last = p
			fn(fmt.Sprintf("%s %d%% (%d of %d bytes)", prefix, p, done, total))
		}
	}
}

// plural is "1 message", "2 messages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func say(fn func(string), format string, a ...any) {
	if fn != nil {
		fn(fmt.Sprintf(format, a...))
	}
}

// writeHistoryArchive writes the archive of the messages since since
// (all when zero) of every conversation in the store to w. It reads the
// store twice in one transaction (to count for the header, then to write),
// one message at a time, so that a long history (a busy large group) is
// never held in memory. progress, when set, is told every historyStep
// messages written.
func writeHistoryArchive(st *store.Store, user string, since time.Time, w io.Writer, progress func(string)) (historyHeader, error) {
	h := historyHeader{Format: historyFormat, User: user, Since: since}
	keep := func(m store.Message) bool { return since.IsZero() || m.SentAt.IsZero() || !m.SentAt.Before(since) }
	err := st.View(func(tx *store.Tx) error {
		convs := tx.HistoryConversations()
		for _, conv := range convs {
			n := 0
			if err := tx.EachHistory(conv, func(m store.Message) error {
				if keep(m) {
					n++
				}
				return nil
			}); err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			h.Messages += n
			h.Conversations++
			if cv, err := convstate.Get(tx, conv); err == nil && !cv.Group && len(cv.Peers) == 1 {
				if h.Directs == nil {
					h.Directs = map[string][]string{}
				}
				h.Directs[cv.Peers[0]] = append(h.Directs[cv.Peers[0]], conv)
			}
		}
		enc := json.NewEncoder(w)
		if err := enc.Encode(h); err != nil {
			return err
		}
		written := 0
		for _, conv := range convs {
			if err := tx.EachHistory(conv, func(m store.Message) error {
				if !keep(m) {
					return nil
				}
				if written++; written%historyStep == 0 {
					say(progress, "history: exported %d of %d messages", written, h.Messages)
				}
				return enc.Encode(m)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return h, err
}

// readHistoryArchive decodes an archive of user's history from r and
// calls fn for each message, in order. Malformed input, another user's
// archive, or a count that differs from the header is an error.
func readHistoryArchive(r io.Reader, user string, fn func(store.Message) error) (historyHeader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var h historyHeader
	line, err := readLine(br)
	if err != nil {
		return h, fmt.Errorf("history archive header: %w", err)
	}
	if err := json.Unmarshal(line, &h); err != nil || h.Format != historyFormat {
		return h, fmt.Errorf("history archive: not a %s archive", historyFormat)
	}
	if h.User != user {
		return h, fmt.Errorf("history archive of %q, not of %s", h.User, user)
	}
	if h.Messages < 0 || h.Conversations < 0 {
		return h, errors.New("history archive: negative counts")
	}
	n := 0
	for {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return h, fmt.Errorf("history archive message %d: %w", n+1, err)
		}
		var m store.Message
		if err := json.Unmarshal(line, &m); err != nil {
			return h, fmt.Errorf("history archive message %d: %w", n+1, err)
		}
		if m.Conversation == "" || m.Seq == 0 || m.ID == "" {
			return h, fmt.Errorf("history archive message %d: needs a conversation, seq and id", n+1)
		}
		if m.Media != nil {
			if err := checkMediaRef(m.Media); err != nil {
				return h, fmt.Errorf("history archive message %d: %w", n+1, err)
			}
		}
		if n++; n > h.Messages {
			return h, fmt.Errorf("history archive holds more than the %d messages its header counts", h.Messages)
		}
		if err := fn(m); err != nil {
			return h, fnError{err}
		}
	}
	if n != h.Messages {
		return h, fmt.Errorf("history archive holds %d messages, its header counts %d (cut short?)", n, h.Messages)
	}
	return h, nil
}

// fnError is an error of readHistoryArchive's fn, told apart from the
// archive's own.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// readLine reads one newline-terminated line of at most maxHistoryLine
// bytes; io.EOF at a clean end.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxHistoryLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxHistoryLine)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, errors.New("unterminated last line (cut short?)")
		default:
			return nil, err
		}
	}
}

// exportHistory writes, encrypts and uploads the archive and returns the
// JSON media reference for the approval bundle.
func (c *Client) exportHistory(ctx context.Context, opts HistoryOptions) ([]byte, error) {
	a, err := c.acct.Account()
	if err != nil {
		return nil, err
	}
	var since time.Time
	if opts.Days > 0 {
		since = c.cfg.Now().Add(-time.Duration(opts.Days) * 24 * time.Hour)
	}
	// The plaintext archive exists only until it is encrypted (below): in
	// memory on Linux (never on a disk, which matters for an encrypted
	// profile), elsewhere in the profile folder, which only this user reads.
	plain, cleanup, err := plainTemp(c.cfg.Profile, "history")
	if err != nil {
		return nil, fmt.Errorf("history archive: %w", err)
	}
	defer cleanup()
	bw := bufio.NewWriter(plain)
	h, err := writeHistoryArchive(c.st, a.User, since, bw, opts.Progress)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = plain.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, fmt.Errorf("history archive: %w", err)
	}
	say(opts.Progress, "history: %s of %s; encrypting", plural(h.Messages, "message"), plural(h.Conversations, "conversation"))
	var rnd [8]byte
	rand.Read(rnd[:])
	up, err := c.media.Prepare(plain, "media-upload/history-"+hex.EncodeToString(rnd[:]))
	cleanup()
	if err != nil {
		return nil, fmt.Errorf("history archive: %w", err)
	}
	defer up.Close()
	ref := store.MediaRef{Type: historyType, Name: "history.jsonl", Key: up.Key(), SHA256: up.SHA256(),
		PlainSHA256: up.PlainSHA256(), Size: up.PlainSize()}
	if u, err := identity.ParseUser(a.User); err == nil {
		ref.Server = u.Domain
	}
	say(opts.Progress, "history: uploading %d bytes", ref.Size)
	if ref.ID, err = up.SendProgress(ctx, percent(opts.Progress, "history: uploaded")); err != nil {
		if wire.Is(err, wire.Code_CODE_TOO_LARGE) || wire.Is(err, wire.Code_CODE_LIMIT) {
			return nil, fmt.Errorf("the history archive (%s of %s, %d bytes) is refused by the server (%w); "+
				"approve again with a smaller --history-days, or with --no-history", plural(h.Messages, "message"),
				plural(h.Conversations, "conversation"), ref.Size, err)
		}
		return nil, fmt.Errorf("history archive upload: %w", err)
	}
	if err := c.st.Update(up.Forget); err != nil {
		return nil, err
	}
	up.Remove()
	say(opts.Progress, "history: uploaded; its key goes to the new device only")
	return json.Marshal(ref)
}
