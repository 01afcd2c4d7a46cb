package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"hearth/homeserver/certs"
)

func init() { subcommands = append(subcommands, newInstallServiceCmd) }

// serviceOptions are what the systemd unit is made of.
type serviceOptions struct {
	Name      string // unit name without .service
	Binary    string // absolute path of hearth
	Dir       string // the data folder
	User      string // a dedicated user; "": DynamicUser
	LogFormat string // text or json
	// StateDir is Dir's name under /var/lib when systemd manages the
	// folder (StateDirectory=); "": Dir is elsewhere (ReadWritePaths=).
	StateDir string
}

var unitName = regexp.MustCompile(`^[a-zA-Z0-9_.@-]+$`)

func (o *serviceOptions) check() error {
	if !unitName.MatchString(o.Name) {
		return fmt.Errorf("--name %q: want letters, digits, _ . @ -", o.Name)
	}
	if !filepath.IsAbs(o.Binary) || !filepath.IsAbs(o.Dir) {
		return errors.New("--binary and --dir must be absolute paths")
	}
	if strings.ContainsAny(o.Binary+o.Dir+o.User, " \t\n\"'\\%$;") {
		return errors.New("--binary, --dir and --user must not contain spaces, quotes, %, $, ; or backslashes")
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	o.Dir = filepath.Clean(o.Dir)
	if rel, ok := strings.CutPrefix(o.Dir, "/var/lib/"); ok && rel != "" && !strings.Contains(rel, "/") {
		o.StateDir = rel
	} else if o.User == "" {
		return fmt.Errorf("--dir %s: without --user the data folder must be /var/lib/NAME (systemd's StateDirectory, owned by the dynamic user)", o.Dir)
	}
	return nil
}

// unitTemplate is the hardened unit. The server needs: its data folder
// (read-write, nothing else on disk), UDP and TCP sockets (port 443 by
// CAP_NET_BIND_SERVICE alone), the admin Unix socket, outbound
// connections (federation, ACME).
var unitTemplate = template.Must(template.New("unit").Parse(`# Written by hearth install-service. docs/operations.md, "Service".
[Unit]
Description=Hearth homeserver
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={{.Binary}} serve --dir {{.Dir}} --log-format {{.LogFormat}}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
TimeoutStartSec=90s
TimeoutStopSec=30s
Environment=HEARTH_DIR={{.Dir}}
{{if .User}}User={{.User}}
Group={{.User}}
{{else}}DynamicUser=yes
{{end}}{{if .StateDir}}StateDirectory={{.StateDir}}
StateDirectoryMode=0700
{{else}}ReadWritePaths={{.Dir}}
{{end}}UMask=0077
LimitNOFILE=65536
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`))

// renderUnit is the unit file of o.
func renderUnit(o serviceOptions) ([]byte, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := unitTemplate.Execute(&b, o); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func newInstallServiceCmd() *cobra.Command {
	o := serviceOptions{}
	var unitDir string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install-service",
		Short: "Write a hardened systemd unit that runs hearth serve",
		Long: `install-service writes UNIT-DIR/NAME.service, a systemd unit that runs
"hearth serve --dir DIR" with readiness notification (Type=notify), reload
on "systemctl reload" (SIGHUP), restart on failure and hardening (a
dynamic user, or --user; ProtectSystem=strict with only the data folder
writable; NoNewPrivileges; PrivateTmp; a system call filter; no
capability but binding ports below 1024). It prints the commands that
enable the service; it does not run them. --dry-run prints the unit
instead of writing it.

Initialize the data folder first (hearth init --dir DIR ...); with the
default dynamic user DIR must be /var/lib/NAME, which systemd hands to
the service's user when it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find the hearth binary (set --binary): %w", err)
				}
				if exe, err = filepath.EvalSymlinks(exe); err != nil {
					return fmt.Errorf("cannot find the hearth binary (set --binary): %w", err)
				}
				o.Binary = exe
			}
			unit, err := renderUnit(o)
			if err != nil {
				return err
			}
			if dryRun {
				_, err := cmd.OutOrStdout().Write(unit)
				return err
			}
			out := cmd.OutOrStdout()
			if _, err := os.Stat(filepath.Join(o.Dir, configFile)); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is not initialized yet; run first: %s init --dir %s --domain YOUR.DOMAIN [--acme]\n", o.Dir, o.Binary, o.Dir)
			}
			path := filepath.Join(unitDir, o.Name+".service")
			if err := os.MkdirAll(unitDir, 0o755); err != nil {
				return fmt.Errorf("unit folder: %w", err)
			}
			if err := certs.WriteFileAtomic(path, unit, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s\nenable and start it with:\n  systemctl daemon-reload\n  systemctl enable --now %s\n", path, o.Name)
			fmt.Fprintf(out, "then: systemctl status %s; journalctl -u %s; reload the config with: systemctl reload %s\n", o.Name, o.Name, o.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "hearth", "unit name (NAME.service)")
	f.StringVar(&o.Dir, "dir", "/var/lib/hearth", "the server's data folder")
	f.StringVar(&o.Binary, "binary", "", "absolute path of the hearth binary (default: this one)")
	f.StringVar(&o.User, "user", "", "run as this existing user (and its group) instead of a dynamic user")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format of the service: text or json")
	f.StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "folder the unit is written to")
	f.BoolVar(&dryRun, "dry-run", false, "print the unit instead of writing it")
	return cmd
}
