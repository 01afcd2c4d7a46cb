package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/session"
	"hearth/client/transport"
)

// Transport choices of `chat --transport` and HEARTH_TRANSPORT.
const (
	transportAuto         = "auto"
	transportWebTransport = "webtransport"
	transportWebSocket    = "websocket"
	envTransport          = "HEARTH_TRANSPORT"
)

// statsPrefix starts the line `chat --stats` writes to stderr; the rest of
// the line is JSON (chatStats).
const statsPrefix = "hearth stats: "

// registerNetFlags adds --transport and --stats to the chat command.
func (e *chatEnv) registerNetFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&e.transport, "transport", "",
		"auto (WebTransport, the WebSocket raced after 300 ms), webtransport or websocket; default $"+envTransport+", else auto")
	cmd.PersistentFlags().BoolVar(&e.stats, "stats", false,
		`at the end, write one line "`+statsPrefix+`{json}" to stderr: connections, transport, round trips per operation`)
}

// dialOptions maps the transport choice to dial options.
func (e *chatEnv) dialOptions() (transport.DialOptions, error) {
	choice := e.transport
	if choice == "" {
		choice = os.Getenv(envTransport)
	}
	switch choice {
	case "", transportAuto:
		return transport.DialOptions{}, nil
	case transportWebTransport:
		return transport.DialOptions{WebTransportOnly: true}, nil
	case transportWebSocket:
		return transport.DialOptions{ForceWebSocket: true}, nil
	}
	return transport.DialOptions{}, fmt.Errorf("unknown transport %q (--transport or $%s): want auto, webtransport or websocket", choice, envTransport)
}

// dialer returns the client's dial function for the chosen transport.
func (e *chatEnv) dialer() (client.DialFunc, error) {
	opts, err := e.dialOptions()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, addr, caPath string) (io.ReadWriteCloser, error) {
		return dialServerWith(ctx, addr, caPath, opts)
	}, nil
}

// chatStats is the JSON of the --stats line.
type chatStats struct {
	Command string `json:"command"`
	session.Stats
}

// wrapStats makes every subcommand of cmd print the --stats line when it
// ends, whether it succeeded or not.
func (e *chatEnv) wrapStats(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		e.wrapStats(sub)
	}
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		if e.stats {
			b, jerr := json.Marshal(chatStats{Command: c.CommandPath(), Stats: session.DefaultMeter.Stats()})
			if jerr == nil {
				fmt.Fprintf(c.ErrOrStderr(), "%s%s\n", statsPrefix, b)
			}
		}
		return err
	}
}
