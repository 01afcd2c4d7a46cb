package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
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

// newChatProfileCmd is `hearth chat profile encrypt`.
func newChatProfileCmd(env *chatEnv) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Manage this device's profile folder"}
	cmd.AddCommand(&cobra.Command{
		Use:   "encrypt (--passphrase-stdin | HEARTH_PASSPHRASE_FILE=FILE)",
		Short: "Encrypt an unencrypted profile at rest with a key derived from a passphrase",
		Long: `encrypt seals every record of the profile with a key derived from the
passphrase (argon2id) and rewrites the file so no plaintext copy stays in
it. Afterwards every chat command needs the passphrase (--passphrase-stdin
or HEARTH_PASSPHRASE_FILE). Run it while no other chat command uses the
profile. A wrong passphrase later is refused and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env.profile == "" {
				return fmt.Errorf("--profile is required")
			}
			pass, err := env.passphrase(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(pass) == 0 {
				return errors.New("give the passphrase with --passphrase-stdin or " + passphraseFileEnv)
			}
			env.noPassphrase = true // the profile is opened as it is: unencrypted
			c, err := env.open()
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.EncryptProfile(pass); err != nil {
				return err
			}
			kv(cmd.OutOrStdout(), "profile", "encrypted")
			return nil
		},
	})
	return cmd
}
