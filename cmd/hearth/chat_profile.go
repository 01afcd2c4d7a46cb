package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"hearth/client/oskeyring"
)

// passphraseFileEnv names a file holding the profile passphrase (its
// first line), for scripts and services (docs/security.md).
const passphraseFileEnv = "HEARTH_PASSPHRASE_FILE"

// stdinLines reads standard input once (at most 8 KiB) and returns its
// lines; `chat login --password-stdin --passphrase-stdin` takes the
// password from the first line and the passphrase from the second.
func (e *chatEnv) stdinLines(r io.Reader) ([]string, error) {
	if e.stdin == nil {
		b, err := io.ReadAll(io.LimitReader(r, 8192))
		if err != nil {
			return nil, err
		}
		e.stdin = strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
		for i := range e.stdin {
			e.stdin[i] = strings.TrimRight(e.stdin[i], "\r")
		}
	}
	return e.stdin, nil
}

// password is `chat login --password-stdin`'s password: all of standard
// input, or its first line when the passphrase follows it.
func (e *chatEnv) password(r io.Reader) (string, error) {
	if !e.passphraseStdin {
		return readSecret(r)
	}
	lines, err := e.stdinLines(r)
	if err != nil {
		return "", err
	}
	if len(lines) < 2 || lines[0] == "" || lines[1] == "" {
		return "", errors.New("with --passphrase-stdin, standard input holds the password, then the passphrase on the next line")
	}
	return lines[0], nil
}

// passphrase is the profile passphrase: from standard input with
// --passphrase-stdin (its line after the password for `chat login`), else
// from the file $HEARTH_PASSPHRASE_FILE names, else none.
func (e *chatEnv) passphrase(r io.Reader) ([]byte, error) {
	if e.passphraseStdin {
		lines, err := e.stdinLines(r)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		i := 0
		if e.loginPassword {
			i = 1
		}
		if len(lines) <= i || lines[i] == "" {
			return nil, errors.New("--passphrase-stdin: no passphrase on standard input")
		}
		return []byte(lines[i]), nil
	}
	path := os.Getenv(passphraseFileEnv)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", passphraseFileEnv, err)
	}
	p, _, _ := strings.Cut(string(b), "\n")
	p = strings.TrimRight(p, "\r")
	if p == "" {
		return nil, fmt.Errorf("%s: %s holds no passphrase", passphraseFileEnv, path)
	}
	return []byte(p), nil
}

// newChatProfileCmd is `hearth chat profile encrypt|status`.
func newChatProfileCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Manage this device's profile folder"}
	var useKeyring bool
	encrypt := &cobra.Command{
		Use:   "encrypt (--passphrase-stdin | HEARTH_PASSPHRASE_FILE=FILE | --keyring)",
		Short: "Encrypt an unencrypted profile at rest with a passphrase or a key kept in the OS keyring",
		Long: `encrypt seals every record of the profile with a key derived from the
passphrase (argon2id), or with --keyring a random key kept in the OS
keyring (Secret Service, Keychain, Credential Manager), and rewrites the
file so no plaintext copy stays in it. Afterwards every chat command needs
the passphrase (--passphrase-stdin or HEARTH_PASSPHRASE_FILE), or runs in a
session that reaches the keyring. Run it while no other chat command uses
the profile. A wrong passphrase later is refused and changes nothing.

New profiles are encrypted with a key kept in the OS keyring by default
where one is reachable (set HEARTH_KEYRING=off to turn that off).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env.profile == "" {
				return fmt.Errorf("--profile is required")
			}
			var pass []byte
			if useKeyring {
				if env.passphraseStdin || os.Getenv(passphraseFileEnv) != "" {
					return errors.New("give either --keyring or a passphrase, not both")
				}
				if !oskeyring.Available() {
					return fmt.Errorf("no OS keyring is reachable from this session (on Linux: a D-Bus session bus with a Secret Service, and %s not off)", oskeyring.EnvSwitch)
				}
			} else {
				var err error
				if pass, err = env.passphrase(cmd.InOrStdin()); err != nil {
					return err
				}
				if len(pass) == 0 {
					return errors.New("give the passphrase with --passphrase-stdin or " + passphraseFileEnv + ", or use --keyring")
				}
			}
			env.noPassphrase = true // the profile is opened as it is: unencrypted
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if useKeyring {
				err = c.EncryptProfileKeyring(oskeyring.Keyring{})
			} else {
				err = c.EncryptProfile(pass)
			}
			if err != nil {
				return err
			}
			kv(cmd.OutOrStdout(), "profile", "encrypted")
			kv(cmd.OutOrStdout(), "protection", c.ProfileProtection())
			return nil
		},
	}
	encrypt.Flags().BoolVar(&useKeyring, "keyring", false, "keep a random key in the OS keyring instead of using a passphrase")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show how the profile is kept at rest: none, passphrase or keyring",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			kv(cmd.OutOrStdout(), "protection", c.ProfileProtection())
			return nil
		},
	}
	cmd.AddCommand(encrypt, status)
	return cmd
}
