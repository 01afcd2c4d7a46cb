package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/homeserver/admin"
)

// runRemote is run over the server's REST admin endpoints, authorized by
// the access token of the --profile device (its user needs the admin role).
func (e *adminEnv) runRemote(cmd *cobra.Command, f func(ctx context.Context, c *admin.Client) error) error {
	if e.profile == "" {
		return errors.New("--server needs --profile: the chat profile of a device of an admin-role user")
	}
	if e.dir != "" {
		return errors.New("--dir (the local admin socket) and --server/--profile (remote administration) exclude each other")
	}
	ctx, cancel := signalContext(cmd.Context())
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, time.Minute)
	defer tcancel()
	cl, err := (&chatEnv{profile: e.profile}).open()
	if err != nil {
		return err
	}
	defer cl.Close()
	acct, err := cl.Account()
	if err != nil {
		return err
	}
	server := e.server
	if server == "" {
		server = acct.Server
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if acct.CAPath != "" {
		pem, err := os.ReadFile(acct.CAPath)
		if err != nil {
			return fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA file %s holds no PEM certificate", acct.CAPath)
		}
		tlsConf.RootCAs = pool
	}
	c, err := admin.DialREST(server, tlsConf, func(ctx context.Context) (string, error) {
		tok, _, err := cl.AccessToken(ctx, 30*time.Second)
		return tok, err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return adminError(f(ctx, c))
}

func newAdminUserRoleCmd(env *adminEnv) *cobra.Command {
	return &cobra.Command{
		Use:   "role NAME admin|user",
		Short: "Give an account the admin role (remote administration) or take it back",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var isAdmin bool
			switch args[1] {
			case "admin":
				isAdmin = true
			case "user":
			default:
				return fmt.Errorf("role %q: want admin or user", args[1])
			}
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				err := c.UserSetRole(ctx, args[0], isAdmin)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: role %s\n", args[0], args[1])
				}
				return err
			})
		},
	}
}

func newAdminAuditCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--limit N] [--json]",
		Short: "Show the admin audit log, newest first: when, via, who, what, result",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return fmt.Errorf("--limit %d: want a positive number", limit)
			}
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				es, err := c.AuditList(ctx, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), es)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tVIA\tACTOR\tACTION\tTARGET\tRESULT")
				for _, e := range es {
					result := strconv.Itoa(e.Status)
					if e.Code != "" {
						result += " " + e.Code
					}
					target := e.Target
					if target == "" {
						target = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(e.AtMs).UTC().Format("2006-01-02 15:04:05Z"),
						e.Via, e.Actor, e.Action, target, result)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most N entries")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
