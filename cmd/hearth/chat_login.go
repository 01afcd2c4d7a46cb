package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

func newChatLoginCmd(env *chatEnv) *cobra.Command {
	var server, ca, recoveryFile, name, invite string
	var pwStdin, noQR bool
	var qrPNG string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "login USER@DOMAIN --server HOST:PORT --ca DIR/ca.pem --password-stdin [--recovery-key-file F] [--invite CODE]",
		Short: "Log this profile in as a new device of USER",
		Long: `Log in as a new device. The user's first device creates the identity key
and prints "recovery-key: ..." once: keep it safe. Any later device prints
"link-code: CODE" and waits until an existing device runs
"hearth chat device approve CODE", or approves itself with --recovery-key-file.
A waiting device also draws the link code as a QR code (on standard
output when it is a terminal, else on standard error; --no-qr to skip,
--qr-png FILE to write it as an image) and prints its key fingerprint,
which the approving device shows before it approves. With
--approval-timeout, a device nobody approved in time is removed from the
server and the profile logged out, so the same login starts afresh.
A device approved with history imports it before "status: active"; if
that fails it prints "history: pending" and the next send, recv or
history tries again.
With --invite CODE (from "hearth admin invite create") the account is created
first, with the password read from standard input, and this is its first device.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !pwStdin {
				return errors.New("--password-stdin is required (the password is read from standard input)")
			}
			if server == "" {
				return errors.New("--server HOST:PORT is required")
			}
			env.loginPassword = true
			pw, err := env.password(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read password: %w", err)
			}
			p := client.LoginParams{User: args[0], Password: pw, Server: server, CAPath: ca, DeviceName: name, InviteCode: invite}
			if recoveryFile != "" {
				raw, err := os.ReadFile(recoveryFile)
				if err != nil {
					return fmt.Errorf("read recovery key: %w", err)
				}
				p.RecoveryKey = strings.TrimSpace(string(raw))
			}
			if p.DeviceName == "" {
				p.DeviceName, _ = os.Hostname()
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			res, err := c.Login(ctx, p)
			if res.DeviceID != "" {
				kv(out, "user", res.User)
				kv(out, "device", res.DeviceID)
			}
			if res.RecoveryKey != "" {
				kv(out, "recovery-key", res.RecoveryKey)
				fmt.Fprintln(cmd.ErrOrStderr(), "hearth: keep this recovery key offline (on paper or in a password manager); it is shown once. "+
					"It approves new devices and restores the account when no other device is left.")
			}
			if err != nil {
				return err
			}
			if res.LinkCode != "" {
				if qrPNG != "" { // before the code is shown: a script that read it finds the file
					if err := writeQRPNG(qrPNG, linkQRText(res.User, res.LinkCode)); err != nil {
						return err
					}
				}
				kv(out, "link-code", res.LinkCode)
				if err := showLinkQR(cmd, c, res, noQR); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "hearth: waiting for approval; on a device already logged in as %s run\n"+
					"    hearth chat --profile PDIR device approve %s\n"+
					"(or log in here with --recovery-key-file FILE)\n", res.User, res.LinkCode)
				c.OnHistoryProgress(func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "hearth: "+s) })
				wctx, wcancel := timeoutContext(ctx, wait)
				defer wcancel()
				err := c.WaitApproval(wctx, time.Second)
				if errors.Is(err, client.ErrHistoryPending) {
					// Active: the history import failed and is kept for
					// the next command (or given up, which it says).
					kv(out, "status", "active")
					if _, pending := c.PendingHistory(); pending {
						kv(out, "history", "pending")
					}
					tellHistoryResult(cmd.ErrOrStderr(), c, err)
					return nil
				}
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						return withdrawPending(ctx, c, res.DeviceID, wait)
					}
					if errors.Is(err, context.Canceled) {
						return fmt.Errorf("interrupted while waiting for approval; device %s stays pending: run the same login again to wait once more, "+
							"or remove it with \"hearth chat device revoke %s\" on an approved device", res.DeviceID, res.DeviceID)
					}
					return fmt.Errorf("waiting for approval: %w", err)
				}
			}
			kv(out, "status", "active")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "homeserver address HOST:PORT")
	f.StringVar(&ca, "ca", "", "PEM file of the CA that signed the server certificate (DIR/ca.pem)")
	f.BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input")
	f.StringVar(&recoveryFile, "recovery-key-file", "", "approve this device with the user's recovery key read from this file")
	f.StringVar(&name, "device-name", "", "name shown in device lists (default: host name)")
	f.StringVar(&invite, "invite", "", "create the account USER with this invite code, then log in as its first device")
	f.BoolVar(&noQR, "no-qr", false, "do not draw the link code as a QR code")
	f.StringVar(&qrPNG, "qr-png", "", "also write the link code's QR code to this PNG file (for \"device approve FILE\")")
	f.DurationVar(&wait, "approval-timeout", 0, "give up waiting for approval after this long and remove the pending device (0: wait until interrupted)")
	return cmd
}

// withdrawTimeout bounds the removal of a pending device whose wait for
// approval timed out.
const withdrawTimeout = 15 * time.Second

// withdrawPending removes the pending device id after --approval-timeout
// ran out, and returns the error the login ends with: what happened and
// what to do next.
func withdrawPending(ctx context.Context, c *client.Client, id string, wait time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, withdrawTimeout)
	defer cancel()
	if err := c.Withdraw(wctx); err != nil {
		return fmt.Errorf("no device approved this one within %v, and its pending device %s could not be removed (%s); "+
			"it stays pending: run the same login again to wait once more, or remove it with \"hearth chat device revoke %s\" on an approved device",
			wait, id, plainError(err), id)
	}
	return fmt.Errorf("no device approved this one within %v; its pending device %s was removed from the server and this profile logged out. "+
		"Run the same login again to start over", wait, id)
}

// readSecret reads a secret from r (one line; trailing newline removed).
func readSecret(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// showLinkQR draws the pending device's link QR code (on stdout when it
// is a terminal, else on stderr, so that scripts reading stdout get only
// key: value lines) and prints this device's fingerprint for the user to
// compare on the approving device.
func showLinkQR(cmd *cobra.Command, c *client.Client, res client.LoginResult, noQR bool) error {
	text := linkQRText(res.User, res.LinkCode)
	stderr := cmd.ErrOrStderr()
	if !noQR {
		w := stderr
		if isTerminal(cmd.OutOrStdout()) {
			w = cmd.OutOrStdout()
		}
		bits, err := qrBits(text)
		if err != nil {
			return err
		}
		if err := writeHalfBlocks(w, bits); err != nil {
			return fmt.Errorf("draw qr code: %w", err)
		}
	}
	if fp, err := c.Fingerprint(); err == nil {
		fmt.Fprintf(stderr, "hearth: this device's fingerprint is %s (the approving device shows it too)\n", fp)
	}
	return nil
}
