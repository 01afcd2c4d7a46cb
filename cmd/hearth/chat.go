package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/mlsgroup"
	"hearth/client/oskeyring"
	"hearth/client/store"
	"hearth/client/transport"
)

func init() { subcommands = append(subcommands, newChatCmd) }

// newGroupEngine returns the MLS group engine the chat and bench commands
// encrypt with: the RFC 9420 group state machine of keys/mls, through
// client/mlsgroup.
var newGroupEngine = mlsgroup.New

// chatEnv is what every chat subcommand shares.
type chatEnv struct {
	profile   string
	verbose   bool
	stats     bool   // print the round-trip counters at the end (chat_stats.go)
	transport string // auto, quic, webtransport or websocket (chat_stats.go)
	// tickets is the open profile's TLS session cache (native QUIC's
	// 0-RTT), set once the client is open; dials read it.
	tickets atomic.Pointer[tls.ClientSessionCache]
	// connectWait, if set, bounds how long recv waits to reach the server.
	connectWait time.Duration
	// active: the session changes the user's presence (recv --follow);
	// other commands are one-shot and passive (docs/presence.md).
	active bool
	// The profile passphrase comes from standard input with
	// passphraseStdin (after the password when loginPassword), else from
	// $HEARTH_PASSPHRASE_FILE (chat_profile.go); noPassphrase opens the
	// profile without one.
	passphraseStdin, loginPassword, noPassphrase bool
	stdin                                        []string // standard input's lines, once read
	// mediaConns is client.Config.MediaConnections (--media-connections).
	mediaConns int
}

func newChatCmd() *cobra.Command {
	env := &chatEnv{}
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "Use Hearth as a chat client (login, devices, send, recv, history, media, groups, typing, presence)",
	}
	cmd.PersistentFlags().StringVar(&env.profile, "profile", "", "profile folder of this device (required)")
	cmd.PersistentFlags().BoolVar(&env.verbose, "verbose", false, "log protocol events to stderr")
	cmd.PersistentFlags().IntVar(&env.mediaConns, "media-connections", client.DefaultMediaConnections,
		"connections one file of 1 MiB or more is sent or fetched over at once (1: one; more help on lossy links)")
	env.registerNetFlags(cmd) // chat_stats.go
	cmd.PersistentFlags().BoolVar(&env.passphraseStdin, "passphrase-stdin", false,
		"read the profile passphrase from standard input (an encrypted profile; with login --password-stdin: the line after the password); else $"+passphraseFileEnv)
	cmd.AddCommand(newChatLoginCmd(env), newChatDeviceCmd(env), newChatSendCmd(env), newChatRecvCmd(env), newChatHistoryCmd(env), newChatGroupCmd(env),
		newChatMediaCmd(env), newChatOutboxCmd(env), newChatProfileCmd(env), newChatDoctorCmd(env))
	cmd.AddCommand(newChatTypingCmd(env), newChatPresenceCmd(env), newChatSafetyCmd(env), newChatTrustCmd(env))
	cmd.AddCommand(newChatReadCmd(env), newChatSettingsCmd(env))
	cmd.AddCommand(newChatTokenCmd(env))
	env.wrapStats(cmd)
	return withClientGC(cmd)
}

// chatLogger is the chat commands' logger: errors the user can act on
// (a frame from the server that does not decode, …) reach w also without
// --verbose, which shows everything down to debug.
func chatLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// open opens the profile's client.
func (e *chatEnv) open() (*client.Client, error) {
	if e.profile == "" {
		return nil, fmt.Errorf("--profile is required")
	}
	log := chatLogger(os.Stderr, e.verbose)
	var pass []byte
	if !e.noPassphrase {
		var err error
		if pass, err = e.passphrase(os.Stdin); err != nil {
			return nil, err
		}
	}
	dial, err := e.dialer()
	if err != nil {
		return nil, err
	}
	// Without a passphrase, the OS keyring (where one is reachable) keeps
	// a new profile's key and opens a profile encrypted that way.
	var kr store.Keyring
	if len(pass) == 0 && !e.noPassphrase && oskeyring.Available() {
		kr = oskeyring.Keyring{}
	}
	c, err := client.Open(client.Config{Profile: e.profile, Dial: dial, Logger: log, Groups: newGroupEngine(), ConnectWait: e.connectWait,
		Passive: !e.active, Passphrase: pass, Keyring: kr, MediaConnections: max(e.mediaConns, 1)})
	if errors.Is(err, store.ErrKeyringRefused) {
		return nil, fmt.Errorf("%w; to create the profile without the keyring, set %s=off (unencrypted) or give a passphrase (--passphrase-stdin)", err, oskeyring.EnvSwitch)
	}
	if err != nil {
		return nil, err
	}
	tc := c.TLSSessionCache()
	e.tickets.Store(&tc)
	return c, nil
}

// dialServer connects to addr trusting the CA certificate in caPath.
func dialServer(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error) {
	return dialServerWith(ctx, addr, caPath, transport.DialOptions{})
}

// dialServerWith is dialServer with opts (the transport choice).
func dialServerWith(ctx context.Context, addr, caPath string, opts transport.DialOptions) (io.ReadWriteCloser, error) {
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caPath)
		}
		opts.RootCAs = pool
	}
	return transport.Dial(ctx, addr, opts)
}

// signalContext is ctx cancelled on SIGINT/SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// withClient runs fn with the profile's client open, under a context that
// ends on SIGINT/SIGTERM or after timeout (0: no limit).
func (e *chatEnv) withClient(cmd *cobra.Command, timeout time.Duration, fn func(context.Context, *client.Client) error) error {
	ctx, cancel := signalContext(cmd.Context())
	defer cancel()
	ctx, tcancel := timeoutContext(ctx, timeout)
	defer tcancel()
	c, err := e.open()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// kv prints one `key: value` line, the form scripts parse.
func kv(w io.Writer, key, value string) { fmt.Fprintf(w, "%s: %s\n", key, value) }
