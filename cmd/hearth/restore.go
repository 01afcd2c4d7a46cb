package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"hearth/homeserver/backup"
	"hearth/storage"
)

func init() { subcommands = append(subcommands, newRestoreCmd) }

func newRestoreCmd() *cobra.Command {
	var dir, from string
	cmd := &cobra.Command{
		Use:   "restore --dir NEWDIR --from FILE",
		Short: "Recreate a data folder from a backup archive (server stopped)",
		Long: `restore verifies every checksum of the archive FILE (written by
hearth admin backup), then recreates the data folder NEWDIR from it, which
must not exist or be empty. A truncated or corrupted archive is refused
and nothing is written. The restored database hands out every mailbox and
conversation sequence past a gap of 2^32, so that devices and peer
servers that saw entries made after the backup take the new ones as new,
and drops the single-use KeyPackages, some of which may have been used
after the backup (docs/operations.md, "Backup and restore").
Then run: hearth serve --dir NEWDIR`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || from == "" {
				return errors.New("both --dir NEWDIR and --from FILE are required")
			}
			m, err := backup.Restore(from, dir, func(tmp string, m *backup.Manifest) error {
				return prepareRestored(cmd.Context(), tmp, m)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s from %s\ndomain: %s\nfiles: %d\nmedia: %d\nrun: hearth serve --dir %s\n",
				dir, from, m.Domain, len(m.Files), m.Media, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the new data folder (must not exist, or be empty)")
	cmd.Flags().StringVar(&from, "from", "", "the backup archive")
	return cmd
}

// prepareRestored opens the extracted database (applying any newer
// migrations), moves its sequences past the restore gap and drops the
// single-use KeyPackages (some may have been used after the backup).
func prepareRestored(ctx context.Context, dir string, m *backup.Manifest) error {
	cfg, err := loadServerConfig(dir)
	if err != nil {
		return fmt.Errorf("the archive's config: %w", err)
	}
	if m.Database != databaseFile {
		return fmt.Errorf("the archive's database is %s, want %s", m.Database, databaseFile)
	}
	if m.Domain != "" && m.Domain != cfg.Domain {
		return fmt.Errorf("the archive's config is for %s, its manifest for %s", cfg.Domain, m.Domain)
	}
	db, err := storage.Open(filepath.Join(dir, databaseFile), storage.Options{})
	if err != nil {
		return fmt.Errorf("open the restored database: %w", err)
	}
	err = db.Write(ctx, func(tx *storage.Tx) error {
		if err := tx.SkipRestoredSequences(cfg.Domain, storage.RestoreGap); err != nil {
			return err
		}
		return tx.DropSingleUseKeyPackages()
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restored database: %w", err)
	}
	return nil
}
