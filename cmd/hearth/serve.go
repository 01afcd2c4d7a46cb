package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spf13/cobra"

	"hearth/homeserver"
	"hearth/homeserver/admin"
	"hearth/homeserver/backup"
	"hearth/homeserver/certs"
	"hearth/homeserver/metrics"
	"hearth/homeserver/transport"
	"hearth/homeserver/webui"
	"hearth/storage"
)

func init() { subcommands = append(subcommands, newServeCmd) }

// version is reported by the server; set with -ldflags "-X main.version=…".
var version = "dev"

// The homeserver is what the transport and the admin socket serve.
var (
	_ transport.StreamServer       = (*homeserver.Server)(nil)
	_ transport.HistoryServer      = (*homeserver.Server)(nil)
	_ admin.Ops                    = (*homeserver.Server)(nil)
	_ transport.TokenServer        = (*homeserver.Server)(nil)
	_ transport.ConversationLister = (*homeserver.Server)(nil)
)

// shutdownGrace is how long sessions get to end after SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

func newServeCmd() *cobra.Command {
	var dir, listen, level, format, pprofAddr, metricsFlag string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the homeserver",
		Long: `serve runs the homeserver from its data folder until SIGINT or SIGTERM.
Without --dir it uses the default folder and, on first run, initializes it
for domain "localhost" listening on 127.0.0.1:7443. While running, the
bound address is in DIR/serve.addr and the admin socket at DIR/admin.sock.

SIGHUP reloads config.json without dropping sessions: the send limits
(limits.send_per_second, limits.send_burst), the inbound federation limits
(federation.rate_per_second, federation.rate_burst) and log_level (unless
--log-level is given) take effect at once; other changes are reported and
wait for a restart. A configuration that does not load is refused and the
running one stays. Under systemd (Type=notify) serve reports READY=1,
RELOADING=1 and STOPPING=1 through $NOTIFY_SOCKET.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lv slog.LevelVar
			if err := lv.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
			}
			var h slog.Handler
			switch format {
			case "text":
				h = slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: &lv})
			case "json":
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: &lv})
			default:
				return fmt.Errorf("--log-format %q: want text or json", format)
			}
			log := slog.New(h)
			if dir == "" {
				d, err := defaultServerDir()
				if err != nil {
					return err
				}
				dir = d
				if _, err := os.Stat(filepath.Join(dir, configFile)); errors.Is(err, fs.ErrNotExist) {
					if err := initServerDir(dir, defaultDomain, defaultListen); err != nil {
						return err
					}
					log.Info("initialized data folder", "dir", dir, "domain", defaultDomain)
				}
			}
			if pprofAddr != "" {
				stopPprof, err := startPprof(pprofAddr, log)
				if err != nil {
					return err
				}
				defer stopPprof()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			defer tuneServerGC()()
			return runServer(ctx, dir, listen, metricsFlag, log, logLevel{v: &lv, fixed: cmd.Flags().Changed("log-level")})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "data folder (default $HEARTH_DIR, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
	cmd.Flags().StringVar(&listen, "listen", "", "HOST:PORT overriding the configured listen address; port 0 picks one")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error (default: log_level in config.json, else info)")
	cmd.Flags().StringVar(&format, "log-format", "text", "log format: text or json (one JSON object per line)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this loopback HOST:PORT (profiling under load)")
	cmd.Flags().StringVar(&metricsFlag, "metrics", "", "serve Prometheus /metrics on this HOST:PORT (a bare PORT: 127.0.0.1), a listener of its own; overrides config \"metrics\"")
	return cmd
}

// runServer wires storage, homeserver, certificates, transport and the
// admin socket together and serves until ctx ends or a listener fails.
func runServer(ctx context.Context, dir, listen, metricsFlag string, log *slog.Logger, level logLevel) error {
	// SIGHUP is caught from the start: its default would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := loadServerConfig(dir)
	if err != nil {
		return err
	}
	level.apply(cfg)
	if metricsFlag != "" {
		cfg.Metrics = metricsFlag
	}
	maddr, err := metricsAddr(cfg.Metrics)
	if err != nil {
		return err
	}
	if listen != "" {
		cfg.Listen = listen
		if err := cfg.validate(); err != nil {
			return err
		}
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	// A server that was killed left its address behind; nobody must read it.
	addrPath := filepath.Join(dir, addrFile)
	os.Remove(addrPath)

	key, err := homeserver.ReadTokenKeyFile(filepath.Join(dir, signingKeyFile))
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	reg := metrics.NewRegistry()
	writer := &admin.WriterStages{} // the writer's batch times in the admin status (send_stages)
	db, err := storage.Open(filepath.Join(dir, databaseFile), storage.Options{Log: log.With("component", "storage"),
		Observer: commitObservers{metrics.NewWriter(reg), writer}})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	skey, err := readFederationKey(dir, key)
	if err != nil {
		return err
	}
	hcfg := cfg.homeserverConfig(version)
	if err := discoveryConfig(cfg, dir, &hcfg.Federation, log); err != nil {
		return err
	}
	hcfg.KeyDir = dir
	hs, err := homeserver.New(hcfg, homeserver.Deps{DB: db, SigningKey: key, ServerKey: skey, Log: log.With("component", "homeserver"), Writer: writer})
	if err != nil {
		return fmt.Errorf("start homeserver: %w", err)
	}
	defer hs.Close()
	tlsConf, caPath, runCerts, devCA, err := serverTLS(cfg, dir, log)
	if err != nil {
		return err
	}
	resetKey, err := loadResetKey(filepath.Join(dir, resetKeyFile))
	if err != nil {
		return err
	}
	// The admin operations, over the socket and remotely, report the
	// transport's sessions in their status: ops.tr is set once tr exists,
	// before anything is served.
	ops := &statusOps{Server: hs}
	webCfg := webui.Config{Domain: cfg.Domain}
	if devCA != nil {
		webCfg.DevCA, webCfg.CAFile = devCA, caPath
	}
	web, err := webui.New(webCfg)
	if err != nil {
		return err
	}
	tr, err := transport.New(cfg.transportConfig(), transport.Deps{
		Web:     web,
		Streams: hs, History: hs, Media: hs, Tokens: hs, Conversations: hs, TLS: tlsConf, Log: log.With("component", "transport"), Federation: hs.FederationHandler(),
		ResetKey: resetKey,
		Admin:    admin.NewRESTHandler(ops, hs, hs, log.With("component", "admin", "via", "rest")),
		Health: func(ctx context.Context) (transport.Health, error) {
			st, err := hs.Status(ctx)
			return transport.Health{Domain: st.Domain, Version: st.Version, StartedMs: st.StartedMs, OnlineSessions: st.OnlineSessions}, err
		},
	})
	if err != nil {
		return err
	}
	ops.tr = tr
	pc, ln, err := transport.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer pc.Close()
	sockPath := filepath.Join(dir, admin.SocketFile)
	adminLn, err := admin.Listen(sockPath)
	if err != nil {
		ln.Close()
		return err
	}
	bk := backup.New(backup.Config{Dir: dir, Database: databaseFile, MediaDir: mediaDir,
		Skip: []string{lockFile, addrFile, admin.SocketFile}, Domain: cfg.Domain, Version: version},
		backup.Deps{DB: db, Media: hs.MediaStore(), Log: log.With("component", "backup")})
	adm := admin.NewSocketServer(ops, log.With("component", "admin"), admin.WithBackup(bk), admin.WithAudit(hs))
	if maddr != "" {
		reg.MustRegister(metrics.NewCollector(metricsSources(hs, db, tr)))
		stopMetrics, err := startMetrics(maddr, reg, log)
		if err != nil {
			adminLn.Close()
			ln.Close()
			return err
		}
		defer stopMetrics()
	}

	errc := make(chan error, 3)
	go func() { errc <- tr.ServeQUIC(pc) }()
	go func() { errc <- tr.ServeTLS(ln) }()
	go func() { errc <- adm.Serve(adminLn) }()
	if runCerts != nil {
		certCtx, stopCerts := context.WithCancel(ctx)
		certsDone := make(chan struct{})
		go func() { runCerts(certCtx); close(certsDone) }()
		defer func() { stopCerts(); <-certsDone }()
	}

	bound := dialableAddr(ln.Addr())
	hs.SetFederationAddress(federationAddress(cfg, bound))
	if err := certs.WriteFileAtomic(addrPath, []byte(bound+"\n"), 0o644); err != nil {
		log.Warn("cannot record the bound address", "err", err)
	}
	defer os.Remove(addrPath)
	log.Info("hearth serving", "domain", cfg.Domain, "quic", "udp://"+pc.LocalAddr().String(), "https", "https://"+bound,
		"webtransport", "https://"+bound+transport.PathWebTransport, "ca", caPath, "admin", sockPath, "version", version)
	var users int
	if err := db.Read(ctx, func(tx *storage.Tx) (err error) { users, err = tx.CountUsers(); return }); err == nil && users == 0 {
		if _, isJSON := log.Handler().(*slog.JSONHandler); isJSON {
			log.Info("no users yet: next steps", "text", nextSteps(dir, cfg.Domain, bound, caPath)) // every line stays JSON
		} else {
			fmt.Fprint(os.Stderr, nextSteps(dir, cfg.Domain, bound, caPath))
		}
	}

	if err := sdNotify("READY=1\nSTATUS=serving " + cfg.Domain + " on " + bound); err != nil {
		log.Warn("cannot notify the service manager", "err", err)
	}

	var serveErr error
	for serving := true; serving; {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "grace", shutdownGrace)
			serving = false
		case serveErr = <-errc:
			log.Error("listener failed, shutting down", "err", serveErr)
			serving = false
		case <-hup:
			cfg = reloadServer(dir, listen, cfg, hs, level, log)
		}
	}
	sdNotify("STOPPING=1")
	// A backstop: the server ends on SIGINT/SIGTERM even if some part of
	// the shutdown hangs (seen under load with a stream that never ended).
	// Nothing acknowledged is lost: every acknowledged write is committed.
	// The timer is never stopped: the process exits when serve returns.
	time.AfterFunc(shutdownLimit, func() {
		log.Error("shutdown did not finish in time; exiting without waiting further (goroutine stacks follow on stderr)", "limit", shutdownLimit)
		dumpGoroutines(os.Stderr)
		os.Exit(1)
	})
	return shutdownServer(hs, tr, adm, serveErr, log)
}

// dumpGoroutines writes every goroutine's stack to w, as SIGQUIT would,
// so that a shutdown that hangs says where. Stacks hold no message
// contents or keys: only function names, file lines and pointer values.
func dumpGoroutines(w io.Writer) {
	if p := pprof.Lookup("goroutine"); p != nil {
		p.WriteTo(w, 2)
	}
}

// shutdownLimit bounds the whole shutdown (shutdownServer, then the
// deferred closes of the database and the lock) after a signal.
const shutdownLimit = 3*shutdownGrace + 5*time.Second

// shutdownServer ends sessions first: the homeserver tells every client it
// is going away (SessionClosed, UNAVAILABLE) and closes its stream, then the
// transport stops listening and closes what is left; then the admin socket
// goes. The deferred closes in runServer then close the database and the
// lock.
func shutdownServer(hs *homeserver.Server, tr *transport.Server, adm *admin.SocketServer, serveErr error, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Close(); err != nil {
		log.Warn("homeserver shutdown", "err", err)
	}
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("transport shutdown", "err", err)
	}
	if err := adm.Shutdown(ctx); err != nil {
		log.Warn("admin socket shutdown", "err", err)
		adm.Close()
	}
	if serveErr != nil {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

// serverTLS returns the TLS configuration and the CA file clients need:
// a certificate from ACME when configured (run obtains and renews it once
// the listeners are up), the operator's certificate files (clients use
// their system roots), else the development CA's self-renewing leaf (dev
// is then its manager, for the web client's CA page and WebTransport
// certificate hashes).
func serverTLS(cfg serverConfig, dir string, log *slog.Logger) (conf *tls.Config, caPath string, run func(context.Context), dev *certs.Manager, err error) {
	deps := certs.Deps{Log: log.With("component", "certs")}
	if cfg.ACME != nil {
		conf, run, err := acmeTLS(cfg, dir, log)
		return conf, "none (ACME certificate)", run, nil, err
	}
	if cfg.CertFile != "" {
		abs := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(dir, p) // relative to the data folder
		}
		fs, err := certs.NewFileSource(abs(cfg.CertFile), abs(cfg.KeyFile), deps)
		if err != nil {
			return nil, "", nil, nil, err
		}
		return fs.TLSConfig(), "none (public certificate)", nil, nil, nil
	}
	cm, err := certs.NewManager(cfg.certsConfig(dir), deps)
	if err != nil {
		return nil, "", nil, nil, err
	}
	return cm.TLSConfig(), cm.CAPath(), nil, cm, nil
}

// loadResetKey reads the QUIC stateless-reset key, creating it on first
// use. It stays the same across restarts, so that a restarted server can
// reset the connections its predecessor held (clients then redial at once
// instead of waiting for their idle timeout).
func loadResetKey(path string) (*quic.StatelessResetKey, error) {
	var k quic.StatelessResetKey
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := rand.Read(k[:]); err != nil {
			return nil, err
		}
		if err := certs.WriteFileAtomic(path, k[:], 0o600); err != nil {
			return nil, fmt.Errorf("QUIC reset key: %w", err)
		}
		return &k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("QUIC reset key: %w", err)
	}
	if len(b) != len(k) {
		return nil, fmt.Errorf("QUIC reset key %s: %d bytes, want %d (delete it to make a new one)", path, len(b), len(k))
	}
	copy(k[:], b)
	return &k, nil
}

// federationAddress is the HOST:PORT the key document publishes:
// federation.address when set; for an ACME server DOMAIN:PORT, since a
// public server is reached by its name (discovered peers refuse an IP
// address, docs/federation.md "Discovery rules"); else the bound address.
func federationAddress(cfg serverConfig, bound string) string {
	switch {
	case cfg.Federation != nil && cfg.Federation.Address != "":
		return cfg.Federation.Address
	case cfg.ACME != nil:
		_, port, _ := net.SplitHostPort(bound)
		return net.JoinHostPort(cfg.Domain, port)
	}
	return bound
}

// dialableAddr is addr with an unspecified IP (0.0.0.0, ::) replaced by
// the loopback address, so that DIR/serve.addr can be dialled as it is.
func dialableAddr(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return addr.String()
	}
	ip := net.IPv4(127, 0, 0, 1)
	if ta.IP.To4() == nil {
		ip = net.IPv6loopback
	}
	return (&net.TCPAddr{IP: ip, Port: ta.Port}).String()
}

// lockDir takes an exclusive lock on DIR/hearth.lock so that two servers
// never share a data folder. The lock ends with the process.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another hearth server is running on %s (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}

// nextSteps is what a server without users prints after it started: how
// to add a user and log in.
func nextSteps(dir, domain, addr, caPath string) string {
	return fmt.Sprintf(`
Hearth is running for %[2]s. Next steps, in another terminal:
  1. add a user:  echo 'alice password' | hearth admin --dir %[1]s user add alice --password-stdin
  2. log in:      echo 'alice password' | hearth chat --profile ./alice login alice@%[2]s --server %[3]s --ca %[4]s --password-stdin
  3. chat:        hearth chat --profile ./alice send bob@%[2]s 'Hi!'   (once bob exists and logged in too)
Stop the server with Ctrl-C.

`, dir, domain, addr, caPath)
}
