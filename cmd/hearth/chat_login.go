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
	var pwStdin bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "login USER@DOMAIN --server HOST:PORT --ca DIR/ca.pem --password-stdin [--recovery-key-file F] [--invite CODE]",
		Short: "Log this profile in as a new device of USER",
		Long: `Log in as a new device. The user's first device creates the identity key
and prints "recovery-key: ..." once: keep it safe. Any later device prints
"link-code: CODE" and waits until an existing device runs
"hearth chat device approve CODE", or approves itself with --recovery-key-file.
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
				kv(out, "link-code", res.LinkCode)
				fmt.Fprintf(cmd.ErrOrStderr(), "hearth: waiting for approval; on a device already logged in as %s run\n"+
					"    hearth chat --profile PDIR device approve %s\n"+
					"(or log in here with --recovery-key-file FILE)\n", res.User, res.LinkCode)
				wctx, wcancel := timeoutContext(ctx, wait)
				defer wcancel()
				if err := c.WaitApproval(wctx, time.Second); err != nil {
					if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						return fmt.Errorf("no device approved this one within %v; it stays pending as device %s. "+
							"Run the same login again to wait once more, or remove it: \"hearth chat device revoke %s\" on an approved device",
							wait, res.DeviceID, res.DeviceID)
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
	f.DurationVar(&wait, "approval-timeout", 0, "give up waiting for approval after this long (0: wait until interrupted)")
	return cmd
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
