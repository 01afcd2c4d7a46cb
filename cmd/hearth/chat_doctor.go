package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"hearth/client/store"
)

func newChatDoctorCmd(env *chatEnv) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "doctor [--repair]",
		Short: "Check this profile's store; with --repair, fix it or move it aside",
		Long: `Read every record of the profile's store (PDIR/hearth.db) and say whether it
is sound. Stop other hearth commands on the profile first.
With --repair, a damaged store is replaced: by a copy of all its records when
every one of them can still be read, otherwise by an empty store (the profile
then has to log in again as a new device). The damaged file is kept next to
it as hearth.db.damaged-TIME.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if env.profile == "" {
				return errors.New("--profile is required")
			}
			if fi, err := os.Stat(env.profile); err != nil || !fi.IsDir() {
				return fmt.Errorf("no profile folder at %s", env.profile)
			}
			w := cmd.OutOrStdout()
			rep, err := store.Check(env.profile)
			if errors.Is(err, os.ErrNotExist) {
				kv(w, "store", rep.Path+" (none yet: this profile never logged in)")
				kv(w, "status", "ok")
				return nil
			}
			kv(w, "store", rep.Path+" ("+strconv.FormatInt(rep.Size, 10)+" bytes)")
			if err == nil {
				if rep.User != "" {
					kv(w, "account", rep.User+", device "+rep.Device)
				}
				kv(w, "records", strconv.Itoa(rep.Keys))
				kv(w, "status", "ok")
				return nil
			}
			if !errors.Is(err, store.ErrDamaged) {
				return err
			}
			if !repair {
				kv(w, "status", "damaged")
				return fmt.Errorf("%s is damaged (%v); \"hearth chat --profile %s doctor --repair\" repairs it or moves it aside",
					rep.Path, err, env.profile)
			}
			res, err := store.Repair(env.profile, time.Now())
			if err != nil {
				return err
			}
			kv(w, "damaged-file", res.MovedTo)
			if res.Copied {
				kv(w, "status", "repaired")
				fmt.Fprintln(w, "every record could be read and was copied to a fresh store; the profile works as before")
				return nil
			}
			kv(w, "status", "moved-aside")
			fmt.Fprintf(w, "the store could not be read whole, so this profile starts empty: log in again "+
				"(hearth chat --profile %s login USER@DOMAIN --server HOST:PORT --password-stdin) and approve it from another device\n", env.profile)
			if res.Report.Device != "" {
				fmt.Fprintf(w, "then revoke the old device from another device: hearth chat device revoke %s\n", res.Report.Device)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "replace a damaged store (a copy of its records, or an empty one), keeping the damaged file")
	return cmd
}
