package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/store"
	"hearth/homeserver/certs"
)

// sendFile holds `chat send`'s --file, --type and --stdin flags.
type sendFile struct {
	path, mime string
	stdin      bool
}

func (f *sendFile) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.path, "file", "", "send this file (encrypted, then uploaded) instead of a text")
	cmd.Flags().StringVar(&f.mime, "type", "", "MIME type of --file (default: guessed from its name)")
	cmd.Flags().BoolVar(&f.stdin, "stdin", false, `read the text from standard input (as TEXT "-" does)`)
}

// args checks the positional arguments: USER TEXT, or USER with --file.
func (f *sendFile) args(cmd *cobra.Command, args []string) error {
	if f.path != "" {
		if f.stdin {
			return errors.New("--stdin and --file do not go together")
		}
		return cobra.ExactArgs(1)(cmd, args)
	}
	if f.mime != "" {
		return errors.New("--type goes with --file")
	}
	if f.stdin {
		if len(args) == 2 && args[1] != "-" {
			return errors.New("--stdin reads the text: give no TEXT argument")
		}
		return cobra.RangeArgs(1, 2)(cmd, args)
	}
	return cobra.ExactArgs(2)(cmd, args)
}

// send uploads the file and sends the message referring to it, printing
// the message id (as `send` does for texts) once the server accepted it.
func (f *sendFile) send(cmd *cobra.Command, env *chatEnv, to string, timeout time.Duration) error {
	ctx, cancel := signalContext(cmd.Context())
	defer cancel()
	c, err := env.open()
	if err != nil {
		return err
	}
	defer c.Close()
	tctx, tcancel := timeoutContext(ctx, timeout)
	defer tcancel()
	id, err := c.QueueFile(tctx, to, f.path, f.mime)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("file not uploaded within %v; nothing was sent yet: the same send resumes the upload", timeout)
		}
		return err
	}
	return flushSent(cmd.OutOrStdout(), tctx, c, to, id, timeout)
}

func newChatMediaCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "media",
		Short: "Files received or sent in messages",
	}
	cmd.AddCommand(newChatMediaGetCmd(env))
	return cmd
}

func newChatMediaGetCmd(env *chatEnv) *cobra.Command {
	var out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "get MESSAGE_ID --out FILE",
		Short: "Download, check and decrypt the file of a message this device holds",
		Long: `Download the file the message MESSAGE_ID (an id from recv or history) refers to,
check it against the SHA-256 in the message, decrypt it and write it to FILE
("-": standard output). FILE is only created once the whole file checked out.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			return env.withClient(cmd, timeout, func(ctx context.Context, c *client.Client) error {
				if _, err := c.Account(); err != nil {
					return err
				}
				ref, err := c.MediaOf(args[0])
				if err != nil {
					return err
				}
				if out == "-" {
					return c.FetchMedia(ctx, ref, cmd.OutOrStdout())
				}
				if err := fetchToFile(ctx, c, ref, out); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				kv(w, "file", out)
				kv(w, "name", ref.Name)
				kv(w, "type", ref.Type)
				kv(w, "size", strconv.FormatInt(ref.Size, 10))
				if ref.PlainSHA256 != "" {
					kv(w, "sha256", ref.PlainSHA256)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", `write the file here ("-": standard output)`)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

// fetchToFile writes the media to path (certs.WriteFileFrom): the file appears
// only when it was complete and authentic.
func fetchToFile(ctx context.Context, c *client.Client, ref store.MediaRef, path string) error {
	return certs.WriteFileFrom(path, 0o600, func(w io.Writer) error { return c.FetchMedia(ctx, ref, w) })
}

// shownMedia is a media reference as recv/history --json print it: the
// SHA-256 of the file (what sha256sum prints; empty when the sender did
// not send it) and of its ciphertext, never the key (media get finds the
// key by message id).
type shownMedia struct {
	ID               string `json:"id"`
	SHA256           string `json:"sha256,omitempty"`
	CiphertextSHA256 string `json:"ciphertext_sha256"`
	Size             int64  `json:"size"`
	Type             string `json:"type"`
	Name             string `json:"name"`
}

// shown is a message as recv/history --json print it. A message with a
// receipt status (one this user sent, in history) always has
// "delivered_to" and "read_by", empty lists included.
type shown struct {
	store.Message
	Media       *shownMedia `json:"media,omitempty"`
	DeliveredTo *[]string   `json:"delivered_to,omitempty"`
	ReadBy      *[]string   `json:"read_by,omitempty"`
}

func shownMessage(m store.Message) shown {
	s := shown{Message: m}
	if m.Status != "" {
		d, r := append([]string{}, m.DeliveredTo...), append([]string{}, m.ReadBy...)
		s.DeliveredTo, s.ReadBy = &d, &r
	}
	if r := m.Media; r != nil {
		s.Media = &shownMedia{ID: r.ID, SHA256: r.PlainSHA256, CiphertextSHA256: r.SHA256, Size: r.Size, Type: r.Type, Name: r.Name}
	}
	return s
}

// mediaText is the plain-text line of a media message.
func mediaText(m store.Message) string {
	s := fmt.Sprintf("[file %q, %s, %d bytes; hearth chat media get %s --out FILE]", m.Media.Name, m.Media.Type, m.Media.Size, m.ID)
	if m.Text != "" {
		s += " " + m.Text
	}
	return s
}
