package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"hearth/client"
	"hearth/client/session"
	"hearth/cmd/hearth/internal/loadgen"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

// benchEnv is what every bench workload shares.
type benchEnv struct {
	target    benchTarget
	remote    benchTarget // federation: the second server
	json      bool
	profiles  string
	keep      bool
	parallel  int
	perSocket int
	dialConc  int
	forceWS   bool
	transport string // --transport: auto, quic, webtransport (default), websocket
	quic      bool   // --quic: the same as --transport quic
	verbose   bool
	cpuprof   string
	via       string // impairment relay spec (bench_via.go)
	receipts  bool   // pairs: devices send delivery and read receipts
	// mediaConns is client.Config.MediaConnections (media: --connections).
	mediaConns int
	ackDelay   time.Duration // --ack-delay: the devices' session.Config.AckDelay
}

func newBenchCmd() *cobra.Command {
	e := &benchEnv{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a running homeserver with many real (MLS) client devices from one process",
		Long: `bench drives a running homeserver: it creates users through the admin socket
of --dir, logs one device in per user (real client library, MLS, one bbolt
profile per device) and runs a workload. It reports sent, acknowledged and
delivered rates, loss and duplicates, send→receive latency percentiles and
the server's CPU and RSS (from /proc, when the server runs on this machine).
Client profiles go to a tmpfs (/dev/shm) by default, so the devices' own
fsyncs do not stand in for the server's; the report says where they were.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&e.target.dir, "dir", "", "data folder of the running server (admin socket, serve.addr, ca.pem, hearth.lock)")
	f.StringVar(&e.target.server, "server", "", "HOST:PORT of the server (default: DIR/serve.addr)")
	f.StringVar(&e.target.ca, "ca", "", "CA certificate PEM (default: DIR/ca.pem)")
	f.IntVar(&e.target.pid, "pid", 0, "server PID for CPU/RSS figures (default: from DIR/hearth.lock)")
	f.BoolVar(&e.json, "json", false, "print one JSON object with every figure")
	f.StringVar(&e.profiles, "profiles", "", "folder for the simulated devices' profiles (default: a new folder in /dev/shm, else the temp folder)")
	f.BoolVar(&e.keep, "keep-profiles", false, "keep the profiles folder after the run")
	f.IntVar(&e.parallel, "parallel", 8, "concurrent logins and warm-ups during setup")
	f.IntVar(&e.perSocket, "per-socket", 64, "QUIC connections sharing one UDP socket; 1: a socket per connection, as `hearth chat` dials "+
		"(the default with --via rebind=…: connections sharing a socket follow only two or three NAT rebindings, docs/benchmarks.md)")
	f.IntVar(&e.dialConc, "dial-concurrency", 32, "dial attempts in flight at most (failed dials are retried with backoff)")
	f.BoolVar(&e.forceWS, "websocket", false, "use the WebSocket (TCP) transport instead of WebTransport; the same as --transport websocket")
	f.BoolVar(&e.quic, "quic", false, "use native QUIC (the Hearth ALPN, as the CLI does) instead of WebTransport; the same as --transport quic")
	f.StringVar(&e.transport, "transport", "", "the devices' transport: webtransport (default), quic (native QUIC, ALPN hearth/1, 0-RTT), websocket, "+
		"or auto (as `hearth chat`: native QUIC, the WebSocket raced after 300 ms); never a fallback but with auto: a session on another transport fails the run")
	f.BoolVar(&e.verbose, "verbose", false, "log client events to stderr")
	f.StringVar(&e.cpuprof, "cpuprofile", "", "write this process's CPU profile (the client side) to FILE")
	f.DurationVar(&e.ackDelay, "ack-delay", 0, fmt.Sprintf("how long a device's Ack may wait for a frame to ride with (full clients and --wire receivers); "+
		"0: the client's default, %v; negative: every Ack at once", session.DefaultAckDelay))
	f.StringVar(&e.via, "via", "", `reach the (loopback) server through an impairment relay, e.g. "loss=5%,rtt=200ms,blackout=2s/6s,seed=18" (keys: loss dup reorder delay rtt jitter blackout rebind rate seed udp=blocked; docs/benchmarks.md)`)
	cmd.AddCommand(newBenchPairsCmd(e), newBenchBacklogCmd(e), newBenchIdleCmd(e), newBenchGroupCmd(e), newBenchFederationCmd(e), newBenchMediaCmd(e))
	return withClientGC(cmd)
}

// run sets up the fleet for the target (and the remote, when its folder
// is set), calls w and prints the report.
func (e *benchEnv) run(cmd *cobra.Command, w func(ctx context.Context, f, remote *loadgen.Fleet) (*loadgen.Report, error)) error {
	ctx, cancel := signalContext(cmd.Context())
	defer cancel()
	if e.quic {
		if e.transport != "" && e.transport != transportQUIC {
			return fmt.Errorf("bench: --quic and --transport %s contradict each other", e.transport)
		}
		e.transport = transportQUIC
	}
	choice, err := benchTransport(e.transport, e.forceWS)
	if err != nil {
		return err
	}
	if err := e.target.resolve(ctx); err != nil {
		return err
	}
	defer e.target.adm.Close()
	var via *benchVia
	if e.via != "" {
		v, err := startVia(e.via, &e.target)
		if err != nil {
			return err
		}
		defer v.close()
		via = v
	}
	dir, cleanup, err := e.profileDir()
	if err != nil {
		return err
	}
	defer cleanup()
	perSocket := e.perSocket
	if via != nil && via.rebinds && !cmd.Flags().Changed("per-socket") {
		perSocket = 1 // see newBenchDialer: shared sockets do not survive many rebindings
	}
	dialer := newBenchDialer(perSocket, choice)
	fleet, err := e.fleet(&e.target, dialer, filepath.Join(dir, "home"))
	if err != nil {
		return err
	}
	defer fleet.Close()
	var remote *loadgen.Fleet
	if e.remote.dir != "" {
		if err := e.remote.resolve(ctx); err != nil {
			return fmt.Errorf("remote server: %w", err)
		}
		defer e.remote.adm.Close()
		if remote, err = e.fleet(&e.remote, dialer, filepath.Join(dir, "remote")); err != nil {
			return err
		}
		defer remote.Close()
	}
	if e.cpuprof != "" {
		stopProf, err := startCPUProfile(e.cpuprof)
		if err != nil {
			return err
		}
		defer stopProf()
	}
	rep, err := w(ctx, fleet, remote)
	if err != nil {
		return err
	}
	rep.Params["server"] = e.target.server
	rep.Params["transport"] = choice
	rep.Params["per_socket"] = perSocket
	rep.Params["ack_delay"] = e.ackDelayUsed().String()
	rep.Params["profiles"] = dir
	rep.Params["profiles_on_tmpfs"] = onTmpfs(dir)
	rep.Transports = dialer.counts()
	if via != nil {
		via.report(rep)
	}
	if e.target.pid == 0 {
		rep.Notes = append(rep.Notes, "server PID unknown (not local, or no --pid): no server CPU/RSS figures")
	}
	transportErr := dialer.checkTransport()
	if transportErr != nil {
		rep.Notes = append(rep.Notes, "FAILED: "+transportErr.Error())
	}
	if e.json {
		err = rep.WriteJSON(cmd.OutOrStdout())
	} else {
		rep.WriteText(cmd.OutOrStdout())
	}
	return errors.Join(err, transportErr)
}

func (e *benchEnv) fleet(t *benchTarget, d *benchDialer, profiles string) (*loadgen.Fleet, error) {
	log := slog.New(slog.DiscardHandler)
	if e.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return loadgen.NewFleet(loadgen.Config{Server: t.server, CAPath: t.ca, Domain: t.domain, Dial: d.dial,
		Groups: newGroupEngine, Users: t, ProfileDir: profiles, Parallel: e.parallel, DialConcurrency: e.dialConc, ServerPID: t.pid,
		Logger: log, Progress: os.Stderr, Stages: t.stages, Receipts: e.receipts, MediaConnections: e.mediaConns,
		AckDelay: e.ackDelay})
}

// ackDelayUsed is the devices' ack delay as the session applies it.
func (e *benchEnv) ackDelayUsed() time.Duration {
	switch {
	case e.ackDelay == 0:
		return session.DefaultAckDelay
	case e.ackDelay < 0:
		return 0
	}
	return e.ackDelay
}

// profileDir returns the folder for the profiles and how to clean it up.
func (e *benchEnv) profileDir() (string, func(), error) {
	if e.profiles != "" {
		if err := os.MkdirAll(e.profiles, 0o700); err != nil {
			return "", nil, err
		}
		return e.profiles, func() {}, nil
	}
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "hearth-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if !e.keep {
			os.RemoveAll(dir)
		}
	}, nil
}

// rateNote warns when the senders ran at or above the server's per-device
// send limit: RATE_LIMITED answers, not capacity, then set the pace.
func (e *benchEnv) rateNote(rep *loadgen.Report, senders int) {
	l := e.target.limits.SendPerSecond
	if l > 0 && senders > 0 && rep.AckedRate/float64(senders) >= 0.8*l {
		rep.Notes = append(rep.Notes, fmt.Sprintf("senders averaged %.0f sends/s each, near the server's limit of %.0f "+
			"(limits.send_per_second): RATE_LIMITED answers, not capacity, set the pace", rep.AckedRate/float64(senders), l))
	}
}

func newBenchPairsCmd(e *benchEnv) *cobra.Command {
	var p loadgen.PairsParams
	cmd := &cobra.Command{
		Use:   "pairs",
		Short: "1:1 traffic between pairs of users, at --rate or flat out",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.run(cmd, func(ctx context.Context, f, _ *loadgen.Fleet) (*loadgen.Report, error) {
				rep, err := loadgen.Pairs(ctx, f, p)
				if rep != nil {
					e.rateNote(rep, p.Users)
				}
				return rep, err
			})
		},
	}
	pairsFlags(cmd, &p)
	cmd.Flags().BoolVar(&e.receipts, "receipts", false, "devices send a delivery receipt for what they receive and mark it read (read receipts); compare a run with and without")
	wireFlag(cmd, &p.Wire)
	return cmd
}

// wireFlag adds --wire (server-only load: loadgen/wire.go).
func wireFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "wire", false, "server-only load: set up with real clients and MLS, then speak the wire protocol "+
		"directly (captured ciphertexts of the real size, fresh message ids; receivers ack without decrypting)")
}

func pairsFlags(cmd *cobra.Command, p *loadgen.PairsParams) {
	cmd.Flags().IntVar(&p.Users, "users", 10, "users (even; pairs talk both ways)")
	cmd.Flags().Float64Var(&p.Rate, "rate", 0, "messages per second over all senders (open loop); 0: flat out")
	cmd.Flags().DurationVar(&p.Duration, "duration", 10*time.Second, "sending time")
	cmd.Flags().IntVar(&p.Size, "size", 200, "plaintext bytes per message")
	cmd.Flags().DurationVar(&p.Drain, "drain", 30*time.Second, "longest wait for acks and deliveries after sending stops")
}

func newBenchBacklogCmd(e *benchEnv) *cobra.Command {
	var p loadgen.BacklogParams
	cmd := &cobra.Command{
		Use:   "backlog",
		Short: "store messages for an offline device, then time its drain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.run(cmd, func(ctx context.Context, f, _ *loadgen.Fleet) (*loadgen.Report, error) {
				rep, err := loadgen.Backlog(ctx, f, p)
				if rep != nil {
					e.rateNote(rep, p.Senders)
				}
				return rep, err
			})
		},
	}
	cmd.Flags().IntVar(&p.Messages, "messages", 10000, "messages waiting for the offline device")
	cmd.Flags().IntVar(&p.Senders, "senders", 10, "users sending them")
	cmd.Flags().IntVar(&p.Size, "size", 200, "plaintext bytes per message")
	cmd.Flags().DurationVar(&p.Drain, "drain", 5*time.Minute, "longest wait for storing and for draining each")
	wireFlag(cmd, &p.Wire)
	return cmd
}

func newBenchIdleCmd(e *benchEnv) *cobra.Command {
	var p loadgen.IdleParams
	var serverPprof string
	cmd := &cobra.Command{
		Use:   "idle",
		Short: "hold N idle sessions and measure the server's RSS and CPU per session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.run(cmd, func(ctx context.Context, f, _ *loadgen.Fleet) (*loadgen.Report, error) {
				p.Online = e.target.online
				if serverPprof != "" {
					p.Memory = func(ctx context.Context) (loadgen.MemSample, error) { return loadgen.FetchMemory(ctx, serverPprof) }
				}
				return loadgen.Idle(ctx, f, p)
			})
		},
	}
	cmd.Flags().StringVar(&serverPprof, "server-pprof", "", "the server's --pprof address (127.0.0.1:PORT): before the baseline and the held readings it collects garbage and returns freed memory to the OS, and the report adds RSS, heap, stacks and goroutines per session from those readings (after_free)")
	cmd.Flags().IntVar(&p.Sessions, "sessions", 100, "sessions to hold")
	cmd.Flags().DurationVar(&p.Hold, "hold", 10*time.Second, "how long they are held while CPU is measured")
	cmd.Flags().Float64Var(&p.Ramp, "ramp", loadgen.DefaultIdleRamp, "sessions reopened per second for the hold")
	wireFlag(cmd, &p.Wire)
	return cmd
}

func newBenchGroupCmd(e *benchEnv) *cobra.Command {
	var p loadgen.GroupParams
	cmd := &cobra.Command{
		Use:   "group",
		Short: "messages to one group: --size members, --senders of them, at --rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.run(cmd, func(ctx context.Context, f, _ *loadgen.Fleet) (*loadgen.Report, error) {
				return loadgen.Group(ctx, f, p)
			})
		},
	}
	cmd.Flags().IntVar(&p.Size, "size", 32, "group members (one device each)")
	cmd.Flags().IntVar(&p.Senders, "senders", 1, "members that send")
	cmd.Flags().Float64Var(&p.Rate, "rate", 1, "messages per second over all senders; 0: flat out")
	cmd.Flags().DurationVar(&p.Duration, "duration", 10*time.Second, "sending time")
	cmd.Flags().IntVar(&p.MsgSize, "msg-size", 200, "plaintext bytes per message")
	cmd.Flags().DurationVar(&p.Drain, "drain", time.Minute, "longest wait for acks and deliveries after sending stops")
	wireFlag(cmd, &p.Wire)
	return cmd
}

func newBenchFederationCmd(e *benchEnv) *cobra.Command {
	var p loadgen.PairsParams
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "1:1 traffic between users of two federated servers (--dir and --remote-dir)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if e.remote.dir == "" {
				return errors.New("--remote-dir is required: the data folder of the second, federated server")
			}
			return e.run(cmd, func(ctx context.Context, f, remote *loadgen.Fleet) (*loadgen.Report, error) {
				return loadgen.Federation(ctx, f, remote, p)
			})
		},
	}
	pairsFlags(cmd, &p)
	cmd.Flags().StringVar(&e.remote.dir, "remote-dir", "", "data folder of the second server")
	cmd.Flags().StringVar(&e.remote.server, "remote-server", "", "HOST:PORT of the second server (default: its serve.addr)")
	cmd.Flags().StringVar(&e.remote.ca, "remote-ca", "", "CA of the second server (default: its ca.pem)")
	return cmd
}

func newBenchMediaCmd(e *benchEnv) *cobra.Command {
	var p loadgen.MediaParams
	cmd := &cobra.Command{
		Use:   "media",
		Short: "upload and download throughput: one user sends --files files of --file-size bytes, the other downloads each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if e.mediaConns < 1 {
				return fmt.Errorf("--connections must be at least 1")
			}
			p.Connections = e.mediaConns
			return e.run(cmd, func(ctx context.Context, f, _ *loadgen.Fleet) (*loadgen.Report, error) {
				return loadgen.Media(ctx, f, p)
			})
		},
	}
	cmd.Flags().IntVar(&e.mediaConns, "connections", client.DefaultMediaConnections,
		"connections of a device one file of 1 MiB or more moves over at once (1: the session's only)")
	cmd.Flags().Int64Var(&p.Size, "file-size", 4<<20, "plaintext bytes per file")
	cmd.Flags().IntVar(&p.Files, "files", 3, "files sent one after the other")
	cmd.Flags().DurationVar(&p.Timeout, "timeout", 5*time.Minute, "longest one file may take (upload, delivery, download)")
	return cmd
}
