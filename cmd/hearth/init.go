package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"hearth/homeserver/certs"
	"hearth/homeserver/certs/acmecert"
	"hearth/storage"
)

func init() { subcommands = append(subcommands, newInitCmd) }

func newInitCmd() *cobra.Command {
	var dir, domain, listen string
	var useACME bool
	var acmeCfg acmeConfig
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a homeserver data folder: config, signing key, CA and TLS certificate, database",
		Long: `init creates DIR (mode 0700) holding config.json, the server's Ed25519
access-token signing key (signing.key) and federation key (federation.key),
both mode 0600, a development CA (ca.pem, ca.key) with a TLS
certificate for the listen address (leaf.pem), and the SQLite database.
Clients trust the server with --ca DIR/ca.pem. An initialized folder is
never overwritten.

With --acme the server gets a real certificate for --domain from an ACME
certificate authority (Let's Encrypt unless --acme-directory says
otherwise) when it first serves, and renews it by itself: the domain must
resolve to this server and port 443 (TCP) must reach it, for the CA
validates with TLS-ALPN-01 there. Clients then need no --ca.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := defaultServerDir()
				if err != nil {
					return err
				}
				dir = d
			}
			cfg := newServerConfig(domain, listen)
			if useACME {
				if acmeCfg.CAFile != "" {
					abs, err := filepath.Abs(acmeCfg.CAFile)
					if err != nil {
						return err
					}
					if _, err := systemPlus(abs); err != nil {
						return fmt.Errorf("--acme-ca: %w", err)
					}
					acmeCfg.CAFile = abs
				}
				cfg.ACME = &acmeCfg
			} else if acmeCfg != (acmeConfig{}) {
				return errors.New("--acme-directory, --acme-email, --acme-profile and --acme-ca need --acme")
			}
			if err := initServerConfig(dir, cfg); err != nil {
				return err
			}
			if useACME {
				directory := acmeCfg.Directory
				if directory == "" {
					directory = acmecert.LetsEncrypt
				}
				fmt.Fprintf(cmd.OutOrStdout(), "initialized %s for %s (listen %s)\ncertificate: from the ACME directory %s when hearth serve starts (TLS-ALPN-01 on port 443 of %s)\n",
					dir, domain, listen, directory, domain)
				if _, port, _ := net.SplitHostPort(listen); port != "443" {
					fmt.Fprintf(cmd.OutOrStdout(), "note: the CA connects to port 443 and discovery fetches https://%s/; listen is %s, so forward TCP port 443 to it (or use --listen 0.0.0.0:443)\n", domain, listen)
				}
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialized %s for %s (listen %s)\nclients trust it with --ca %s\n",
				dir, domain, listen, filepath.Join(dir, certs.CAFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data folder (default $HEARTH_DIR, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
	cmd.Flags().StringVar(&domain, "domain", defaultDomain, "the server's domain: users are NAME@DOMAIN")
	cmd.Flags().StringVar(&listen, "listen", defaultListen, "HOST:PORT for QUIC (UDP) and HTTPS (TCP); port 0 picks one")
	cmd.Flags().BoolVar(&useACME, "acme", false, "get and renew the TLS certificate for --domain by ACME (Let's Encrypt by default)")
	cmd.Flags().StringVar(&acmeCfg.Directory, "acme-directory", "", "ACME directory URL of another CA (default Let's Encrypt)")
	cmd.Flags().StringVar(&acmeCfg.Email, "acme-email", "", "contact address for the ACME account (expiry notices)")
	cmd.Flags().StringVar(&acmeCfg.Profile, "acme-profile", "", "issuance profile offered by the CA, e.g. shortlived")
	cmd.Flags().StringVar(&acmeCfg.CAFile, "acme-ca", "", "PEM file of roots trusted for the ACME directory's HTTPS besides the system roots (private CA, tests)")
	return cmd
}

// initServerDir creates everything a server needs in dir. config.json is
// written last: its presence marks a finished init, and an interrupted init
// can simply be run again (existing keys and the CA are kept).
func initServerDir(dir, domain, listen string) error {
	return initServerConfig(dir, newServerConfig(domain, listen))
}

// initServerConfig is initServerDir with a prepared configuration.
func initServerConfig(dir string, cfg serverConfig) error {
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
