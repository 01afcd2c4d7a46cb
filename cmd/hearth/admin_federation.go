package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"hearth/homeserver/admin"
)

// newAdminFederationCmd is `hearth admin federation …` (docs/federation.md).
func newAdminFederationCmd(env *adminEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "federation", Short: "Manage federation: peers and policy"}
	peer := &cobra.Command{Use: "peer", Short: "Manage pinned peers (development and tests)"}
	peer.AddCommand(newAdminFedPeerAddCmd(env))
	policy := func(use, short, op string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
					if err := c.FederationPolicy(ctx, op, args[0]); err != nil {
						return err
					}
					switch op {
					case "mode":
						fmt.Fprintf(cmd.OutOrStdout(), "federation mode %s\n", args[0])
					case "allow":
						fmt.Fprintf(cmd.OutOrStdout(), "%s allowed\n", args[0])
					default:
						fmt.Fprintf(cmd.OutOrStdout(), "%s denied\n", args[0])
					}
					return nil
				})
			},
		}
	}
	key := &cobra.Command{Use: "key", Short: "Manage the federation signing key"}
	key.AddCommand(newAdminFedKeyRotateCmd(env))
	cmd.AddCommand(peer, key, newAdminFedListCmd(env),
		policy("allow DOMAIN", "Put a domain on the allow list (and off the deny list)", "allow"),
		policy("deny DOMAIN", "Put a domain on the deny list (and off the allow list)", "deny"),
		policy("mode open|allowlist|denylist", "Set the federation mode", "mode"))
	return cmd
}

func newAdminFedPeerAddCmd(env *adminEnv) *cobra.Command {
	var address, caFile string
	cmd := &cobra.Command{
		Use:   "add DOMAIN --address HOST:PORT --ca FILE",
		Short: "Pin a peer's federation address and CA, and fetch its keys from there",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if address == "" {
				return errors.New("--address HOST:PORT is required")
			}
			var ca []byte
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
				ca = b
			}
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				p, err := c.FederationPeerAdd(ctx, args[0], address, ca)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "peer %s pinned at %s\n", p.Domain, p.Address)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "HOST:PORT of the peer's federation endpoints")
	cmd.Flags().StringVar(&caFile, "ca", "", "PEM file of the CA that issued the peer's TLS certificate (default: system roots)")
	return cmd
}

func newAdminFedListCmd(env *adminEnv) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show peers, queue depths, last contact and backoff state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				info, err := c.FederationList(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(cmd.OutOrStdout(), info)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "domain: %s\nkey:    %s\nmode:   %s\nallow:  %s\ndeny:   %s\n\n", info.Domain, info.KeyID, info.Mode,
					listOrDash(info.Allow), listOrDash(info.Deny))
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PEER\tADDRESS\tQUEUE\tLAST CONTACT\tSTATE")
				for _, p := range info.Peers {
					addr := p.Address
					if addr == "" {
						addr = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Domain, addr, p.QueueDepth, fmtMsSeconds(p.LastContactMs), backoffState(p))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func listOrDash(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ", ")
}

func fmtMsSeconds(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}

// backoffState is "ok", or "backoff N (retry at T)" after N failures.
func backoffState(p admin.PeerInfo) string {
	if p.Attempts == 0 {
		return "ok"
	}
	s := fmt.Sprintf("backoff %d", p.Attempts)
	if p.NextAttemptMs != 0 {
		s += " (retry " + fmtMsSeconds(p.NextAttemptMs) + ")"
	}
	return s
}

func newAdminFedKeyRotateCmd(env *adminEnv) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate [--grace DURATION]",
		Short: "Make a new federation signing key current; the old one stays published, valid until now+grace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				k, err := c.FederationKeyRotate(ctx, grace)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "signing key %s is current; %s retired, valid until %s\n",
						k.Current, k.Retired, time.UnixMilli(k.RetiredUntilMs).UTC().Format(time.RFC3339))
				}
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Minute, "how long the retired key still counts as valid for what it signed")
	return cmd
}

// newAdminTokenKeyCmd is `hearth admin token-key rotate` (docs/security.md).
func newAdminTokenKeyCmd(env *adminEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "token-key", Short: "Manage the access-token signing key (signing.key)"}
	var grace time.Duration
	rotate := &cobra.Command{
		Use:   "rotate [--grace DURATION]",
		Short: "Make a new access-token signing key current; tokens the old one signed stay valid until now+grace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.run(cmd, func(ctx context.Context, c *admin.Client) error {
				k, err := c.TokenKeyRotate(ctx, grace)
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "token key %s is current; %s retired, valid until %s\n",
						k.Current, k.Retired, time.UnixMilli(k.RetiredUntilMs).UTC().Format(time.RFC3339))
				}
				return err
			})
		},
	}
	rotate.Flags().DurationVar(&grace, "grace", 15*time.Minute, "how long access tokens signed by the retired key stay valid (the access-token lifetime by default)")
	cmd.AddCommand(rotate)
	return cmd
}
