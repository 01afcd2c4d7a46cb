package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"hearth/homeserver/certs"
	"hearth/storage"
)

func init() { subcommands = append(subcommands, newInitCmd) }

func newInitCmd() *cobra.Command {
	var dir, domain, listen string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a homeserver data folder: config, signing key, CA and TLS certificate, database",
		Long: `init creates DIR (mode 0700) holding config.json, the server's Ed25519
access-token signing key (signing.key) and federation key (federation.key),
both mode 0600, a development CA (ca.pem, ca.key) with a TLS
certificate for the listen address (leaf.pem), and the SQLite database.
Clients trust the server with --ca DIR/ca.pem. An initialized folder is
never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := defaultServerDir()
				if err != nil {
					return err
				}
				dir = d
			}
			if err := initServerDir(dir, domain, listen); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialized %s for %s (listen %s)\nclients trust it with --ca %s\n",
				dir, domain, listen, filepath.Join(dir, certs.CAFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data folder (default $HEARTH_DIR, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
	cmd.Flags().StringVar(&domain, "domain", defaultDomain, "the server's domain: users are NAME@DOMAIN")
	cmd.Flags().StringVar(&listen, "listen", defaultListen, "HOST:PORT for QUIC (UDP) and HTTPS (TCP); port 0 picks one")
	return cmd
}

// initServerDir creates everything a server needs in dir. config.json is
// written last: its presence marks a finished init, and an interrupted init
// can simply be run again (existing keys and the CA are kept).
func initServerDir(dir, domain, listen string) error {
	cfg := newServerConfig(domain, listen)
	if err := cfg.validate(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return fmt.Errorf("%s is already initialized (%s exists)", dir, configFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	// A folder made by mkdir under a loose umask, still empty, is ours to
	// restrict; one with other files in it is left as it is.
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restrict data folder: %w", err)
		}
	}
	if err := createSigningKey(filepath.Join(dir, signingKeyFile)); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if err := createFederationKey(filepath.Join(dir, fedKeyFile)); err != nil {
		return fmt.Errorf("federation key: %w", err)
	}
	if err := certs.Init(cfg.certsConfig(dir), certs.Deps{}); err != nil {
		return err
	}
	db, err := storage.Open(filepath.Join(dir, databaseFile), storage.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	// SQLite gives the -wal and -shm files the database file's mode.
	if err := os.Chmod(filepath.Join(dir, databaseFile), 0o600); err != nil {
		return fmt.Errorf("restrict database: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return certs.WriteFileAtomic(filepath.Join(dir, configFile), append(b, '\n'), 0o600)
}
