package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
)

// groupTimeout bounds one group operation (commits are retried on a lost
// epoch until accepted).
const groupTimeout = 60 * time.Second

func newChatGroupCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create and manage group conversations (create, add, remove, leave, rename, promote, demote, info)",
	}
	cmd.AddCommand(newGroupCreateCmd(env), newGroupInfoCmd(env),
		groupOp(env, "add ID USER@DOMAIN...", "Add every device of the users (admins only)", 2, -1,
			func(ctx context.Context, c *client.Client, a []string) error {
				return c.Groups().AddMembers(ctx, a[0], a[1:])
			}),
		groupOp(env, "remove ID USER@DOMAIN...", "Remove every device of the users (admins only)", 2, -1,
			func(ctx context.Context, c *client.Client, a []string) error {
				return c.Groups().RemoveMembers(ctx, a[0], a[1:])
			}),
		groupOp(env, "leave ID", "Leave the group with all your devices (the last admin first promotes someone)", 1, 1,
			func(ctx context.Context, c *client.Client, a []string) error { return c.Groups().Leave(ctx, a[0]) }),
		groupOp(env, "rename ID NAME", "Rename the group (admins only)", 2, 2,
			func(ctx context.Context, c *client.Client, a []string) error {
				return c.Groups().Rename(ctx, a[0], a[1])
			}),
		groupOp(env, "promote ID USER@DOMAIN", "Make a member an admin (admins only)", 2, 2,
			func(ctx context.Context, c *client.Client, a []string) error {
				return c.Groups().Promote(ctx, a[0], a[1])
			}),
		groupOp(env, "demote ID USER@DOMAIN", "Take the admin role from a member; rotates the admin key (admins only)", 2, 2,
			func(ctx context.Context, c *client.Client, a []string) error {
				return c.Groups().Demote(ctx, a[0], a[1])
			}),
	)
	return cmd
}

// groupOp is a group subcommand taking min..max arguments (max -1: any).
func groupOp(env *chatEnv, use, short string, minArgs, maxArgs int, run func(context.Context, *client.Client, []string) error) *cobra.Command {
	args := cobra.RangeArgs(minArgs, maxArgs)
	if maxArgs < 0 {
		args = cobra.MinimumNArgs(minArgs)
	}
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			ctx, tcancel := timeoutContext(ctx, timeout)
			defer tcancel()
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := run(ctx, c, a); err != nil {
				return err
			}
			kv(cmd.OutOrStdout(), "ok", a[0])
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", groupTimeout, "give up after this long")
	return cmd
}

func newGroupCreateCmd(env *chatEnv) *cobra.Command {
	var members string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME [--members USER@DOMAIN,USER@DOMAIN...]",
		Short: "Create a group with you as its admin; the last line of output is its id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			ctx, tcancel := timeoutContext(ctx, timeout)
			defer tcancel()
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			var users []string
			for _, m := range strings.Split(members, ",") {
				if m = strings.TrimSpace(m); m != "" {
					users = append(users, m)
				}
			}
			id, err := c.Groups().Create(ctx, args[0], users)
			if err != nil {
				if id != "" {
					return fmt.Errorf("group %s created but not complete: %w", id, err)
				}
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().StringVar(&members, "members", "", "comma-separated users to add (all their devices)")
	cmd.Flags().DurationVar(&timeout, "timeout", groupTimeout, "give up after this long")
	return cmd
}

func newGroupInfoCmd(env *chatEnv) *cobra.Command {
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "info ID [--json]",
		Short: "Show the group's name, members, admins and epoch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			ctx, tcancel := timeoutContext(ctx, timeout)
			defer tcancel()
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			gi, err := c.Groups().Info(ctx, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				b, err := json.Marshal(gi)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, string(b))
				return err
			}
			kv(w, "id", gi.ID)
			kv(w, "name", gi.Name)
			if gi.Description != "" {
				kv(w, "description", gi.Description)
			}
			kv(w, "epoch", fmt.Sprint(gi.Epoch))
			kv(w, "admins", strings.Join(gi.Admins, ","))
			kv(w, "members", strings.Join(gi.Members, ","))
			kv(w, "devices", strings.Join(gi.Devices, ","))
			kv(w, "admin", fmt.Sprint(gi.Admin))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "give up after this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, `one JSON object: {"id","name","members","devices","admins","epoch","epoch_authenticator","admin"}`)
	return cmd
}
