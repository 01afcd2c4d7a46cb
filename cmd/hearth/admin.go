package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/homeserver/admin"
	"hearth/homeserver/wire"
)

func init() { subcommands = append(subcommands, newAdminCmd) }

// adminEnv is shared by the admin subcommands.
type adminEnv struct {
	dir     string
	server  string // remote administration: HOST:PORT (admin_remote.go)
	profile string // remote administration: the admin's chat profile
}

// ops connects to the running server's admin socket.
func (e *adminEnv) ops() (*admin.Client, error) {
	dir := e.dir
	if dir == "" {
		d, err := defaultServerDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return admin.Dial(filepath.Join(dir, admin.SocketFile))
}

// run calls f with a connected client (the admin socket, or the REST
// endpoints with --server/--profile) and turns its errors into plain messages.
func (e *adminEnv) run(cmd *cobra.Command, f func(ctx context.Context, c *admin.Client) error) error {
	if e.server != "" || e.profile != "" {
		return e.runRemote(cmd, f)
	}
	c, err := e.ops()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
	defer cancel()
	return adminError(f(ctx, c))
}

// opPrefix matches the operation names ("homeserver.UserAdd: ") that lead
// server error messages; the CLI leaves them out.
var opPrefix = regexp.MustCompile(`^([a-z]+\.[A-Za-z]+: )+`)

// adminError shows a server error as its message and kind, without the
// internal operation names.
func adminError(err error) error {
	var we *wire.Error
	if err == nil || !errors.As(err, &we) {
		return err
	}
	msg := opPrefix.ReplaceAllString(we.Msg, "")
	if msg == "" {
		msg = err.Error()
	}
	if kind := wire.KindText(we.Kind); !strings.Contains(msg, kind) {
		msg += " (" + kind + ")"
	}
	return errors.New(msg)
}

func newAdminCmd() *cobra.Command {
	env := &adminEnv{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer the running homeserver through its admin socket, or remotely as an admin user",
	}
	cmd.PersistentFlags().StringVar(&env.dir, "dir", "", "server data folder (default $HEARTH_DIR, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
	cmd.PersistentFlags().StringVar(&env.server, "server", "", "administer the server at HOST:PORT over HTTPS as the admin user of --profile (default: the profile's server)")
	cmd.PersistentFlags().StringVar(&env.profile, "profile", "", "chat profile of an admin-role user's device, for --server")
	user := &cobra.Command{Use: "user", Short: "Manage accounts"}
	user.AddCommand(newAdminUserAddCmd(env), newAdminUserListCmd(env), newAdminUserPasswdCmd(env),
		newAdminUserSimpleCmd(env, "disable", "Disable an account and close its sessions",
			func(ctx context.Context, c *admin.Client, n string) error { return c.UserSetDisabled(ctx, n, true) }),
		newAdminUserSimpleCmd(env, "enable", "Enable a disabled account",
			func(ctx context.Context, c *admin.Client, n string) error { return c.UserSetDisabled(ctx, n, false) }),
		newAdminUserSimpleCmd(env, "delete", "Delete an account",
			func(ctx context.Context, c *admin.Client, n string) error { return c.UserDelete(ctx, n) }),
		newAdminUserRoleCmd(env))
	device := &cobra.Command{Use: "device", Short: "Manage an account's devices"}
	device.AddCommand(newAdminDeviceListCmd(env), newAdminDeviceRevokeCmd(env))
	cmd.AddCommand(user, device, newAdminStatusCmd(env), newAdminFederationCmd(env), newAdminInviteCmd(env), newAdminBackupCmd(env), newAdminTokenKeyCmd(env),
		newAdminAuditCmd(env))
	return cmd
}

// passwordFromStdin reads the password, one line of standard input; it
// refuses unless --password-stdin was given (a password is never an argument).
func passwordFromStdin(cmd *cobra.Command, flagSet bool) ([]byte, error) {
	if !flagSet {
		return nil, errors.New("give the password on standard input with --password-stdin (it is never taken as an argument)")
	}
	line, err := bufio.NewReaderSize(cmd.InOrStdin(), 4096).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password from standard input: %w", err)
	}
	pw := []byte(strings.TrimRight(string(line), "\r\n"))
	clear(line)
	if len(pw) == 0 {
		return nil, errors.New("empty password on standard input")
	}
	return pw, nil
}

func newAdminUserAddCmd(env *adminEnv) *cobra.Command {
	var isAdmin, stdin bool
	cmd := &cobra.Command{
		Use:   "add NAME --password-stdin",
		Short: "Create an account",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := passwordFromStdin(cmd, stdin)
			if err != nil {
				return err
			}
			defer clear(pw)
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				u, err := c.UserAdd(ctx, args[0], pw, isAdmin)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "created %s (%s)\n", u.Address, role(u.Admin))
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&isAdmin, "admin", false, "give the account the admin role")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newAdminUserPasswdCmd(env *adminEnv) *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME --password-stdin",
		Short: "Set an account's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := passwordFromStdin(cmd, stdin)
			if err != nil {
				return err
			}
			defer clear(pw)
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				err := c.UserPasswd(ctx, args[0], pw)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", args[0])
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newAdminUserSimpleCmd(env *adminEnv, verb, short string, f func(context.Context, *admin.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				err := f(ctx, c, args[0])
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %sd\n", args[0], verb)
				}
				return err
			})
		},
	}
}

func newAdminUserListCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				us, err := c.UserList(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), us)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tADDRESS\tROLE\tSTATUS\tDEVICES\tCREATED")
				for _, u := range us {
					status := "active"
					if u.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", u.Name, u.Address, role(u.Admin), status, u.Devices, fmtMs(u.CreatedMs))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func newAdminDeviceListCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list NAME",
		Short: "List an account's devices",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				ds, err := c.DeviceList(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), ds)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tONLINE\tCREATED\tLAST SEEN")
				for _, d := range ds {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", d.ID, d.Name, d.Status, d.Online, fmtMs(d.CreatedMs), fmtMs(d.LastSeenMs))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func newAdminDeviceRevokeCmd(env *adminEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME DEVICE",
		Short: "Revoke a device and close its sessions",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				err := c.DeviceRevoke(ctx, args[0], args[1])
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "device %s of %s revoked\n", args[1], args[0])
				}
				return err
			})
		},
	}
}

func newAdminStatusCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running server's status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "domain:   %s\nversion:  %s\nstarted:  %s\nusers:    %d\nonline:   %s\n",
					st.Domain, st.Version, fmtMs(st.StartedMs), st.Users, plural(int(st.OnlineSessions), "session"))
				printStatusFigures(cmd.OutOrStdout(), st)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func role(isAdmin bool) string {
	if isAdmin {
		return "admin"
	}
	return "user"
}

func fmtMs(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04Z")
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printStatusFigures prints the figures /metrics also has, one per line.
func printStatusFigures(w io.Writer, st admin.Status) {
	if len(st.SessionsByTransport) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(st.SessionsByTransport)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, st.SessionsByTransport[k]))
		}
		fmt.Fprintf(w, "streams:  %s\n", strings.Join(parts, ", "))
	}
	perTx := 0.0
	if st.WriterBatches > 0 {
		perTx = float64(st.WriterRequests) / float64(st.WriterBatches)
	}
	fmt.Fprintf(w, "accepted: %d messages\ndelivered: %d entries\nbacklog:  %d entries not acknowledged\nfederation: %d envelopes queued\nmedia:    %d files, %d bytes\nwriter:   %d transactions, %d requests (%.1f per transaction)\n",
		st.MessagesAccepted, st.MessagesDelivered, st.MailboxBacklog, st.FederationQueue, st.MediaFiles, st.MediaBytes,
		st.WriterBatches, st.WriterRequests, perTx)
	if len(st.Refused) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(st.Refused)) {
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "CODE_"), st.Refused[k]))
		}
		fmt.Fprintf(w, "refused:  %s\n", strings.Join(parts, ", "))
	}
}
