package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hearth/federation"
	"hearth/homeserver"
	"hearth/homeserver/certs"
	"hearth/homeserver/certs/acmecert"
	"hearth/homeserver/transport"
	"hearth/keys/serverkey"
)

// Files of a server data folder.
const (
	configFile     = "config.json"
	signingKeyFile = "signing.key"    // access tokens: Ed25519, PKCS#8 PEM, 0600 (homeserver.TokenKeyFile)
	fedKeyFile     = "federation.key" // federation: Ed25519 seed PEM, 0600 (fedlink.FederationKeyFile)
	databaseFile   = "hearth.db"
	lockFile       = "hearth.lock"
	addrFile       = "serve.addr"     // the bound address while serving
	resetKeyFile   = "quic-reset.key" // QUIC stateless-reset key, 32 bytes, 0600, made by serve
	mediaDir       = "media"          // media files (homeserver/mediastore's default, beside the database)
)

// Defaults for a server started without configuration.
const (
	defaultDomain = "localhost"
	defaultListen = "127.0.0.1:7443"
)

// serverConfig is DIR/config.json. Each component gets only its part
// (homeserverConfig, transportConfig, certsConfig). Zero limits mean the
// component's default.
type serverConfig struct {
	Domain string   `json:"domain"`
	Listen string   `json:"listen"`    // HOST:PORT for UDP (QUIC) and TCP (HTTPS)
	Hosts  []string `json:"tls_hosts"` // more names/IPs for the TLS certificate
	// A certificate from a public CA, kept current by other tools (ACME);
	// both set: used instead of the development CA's leaf.
	CertFile string       `json:"tls_cert_file,omitempty"`
	KeyFile  string       `json:"tls_key_file,omitempty"`
	Limits   serverLimits `json:"limits"`
	Origin   []string     `json:"allowed_origins"` // browser origins allowed besides the server's host
	// Federation tunes server-to-server traffic; absent: the defaults.
	Federation *federationConfig `json:"federation,omitempty"`
	// Metrics is the HOST:PORT (or PORT: on 127.0.0.1) of the Prometheus
	// /metrics listener; empty: none. `serve --metrics` overrides it.
	Metrics string `json:"metrics,omitempty"`
	// PasswordHash sets the argon2id cost of new password hashes; absent:
	// the defaults (19 MiB, 2 passes). A TEST/BENCH SETTING: a lower cost
	// weakens every hash stored while it is set (docs/benchmarks.md uses
	// it to log in 10,000 bench users).
	PasswordHash *passwordHashConfig `json:"password_hash,omitempty"`
	// Presence times presence (docs/presence.md); absent: the defaults.
	Presence *presenceConfig `json:"presence,omitempty"`
	// ACME, when present, gets the certificate for Domain from an ACME
	// CA (Let's Encrypt by default) and renews it; instead of the files
	// and of the development CA.
	ACME *acmeConfig `json:"acme,omitempty"`
	// LogLevel is the level of `hearth serve` when --log-level is not
	// given: debug, info, warn or error; reloaded on SIGHUP.
	LogLevel string `json:"log_level,omitempty"`
}

// presenceConfig is the "presence" section of config.json.
type presenceConfig struct {
	// Refresh: how often this server repeats its users' online and away
	// states to other servers (which drop them 3 × refresh after the last
	// one) and expires lapsed states; default 1m.
	Refresh duration `json:"refresh,omitempty"`
	// Lease: how long online or away set by a one-shot command lasts while
	// no `recv --follow` of the user runs; default 5m.
	Lease duration `json:"lease,omitempty"`
}

// acmeConfig is the "acme" section of config.json.
type acmeConfig struct {
	Directory string `json:"directory,omitempty"` // ACME directory URL; default Let's Encrypt
	Email     string `json:"email,omitempty"`     // account contact (expiry notices)
	Profile   string `json:"profile,omitempty"`   // issuance profile offered by the CA; default its default
	// CAFile is a PEM file of roots trusted for the directory's HTTPS
	// besides the system roots (a private CA; Pebble in tests).
	CAFile string `json:"ca_file,omitempty"`
}

func (a *acmeConfig) validate(domain string) error {
	if a == nil {
		return nil
	}
	if a.Directory != "" && !strings.HasPrefix(a.Directory, "https://") {
		return fmt.Errorf("acme.directory %q: want an https:// URL", a.Directory)
	}
	if local, host, ok := strings.Cut(a.Email, "@"); a.Email != "" && (!ok || local == "" || !strings.Contains(host, ".") || strings.ContainsAny(a.Email, " \t\r\n,<>")) {
		return fmt.Errorf("acme.email %q: want an address such as ops@example.org", a.Email)
	}
	if err := acmecert.CheckDomain(domain); err != nil {
		return fmt.Errorf("acme: domain %q cannot get a public certificate: want the server's DNS name such as chat.example.org", domain)
	}
	return nil
}

// passwordHashConfig is the "password_hash" section of config.json. Zero
// fields mean the defaults.
type passwordHashConfig struct {
	MemoryKiB     uint32 `json:"memory_kib,omitempty"`     // 8..4194304
	Time          uint32 `json:"time,omitempty"`           // passes
	Threads       uint8  `json:"threads,omitempty"`        // lanes
	MaxConcurrent int    `json:"max_concurrent,omitempty"` // hashes computed at once; default GOMAXPROCS
}

func (p *passwordHashConfig) validate() error {
	if p == nil {
		return nil
	}
	if p.MemoryKiB != 0 && (p.MemoryKiB < 8*uint32(max(p.Threads, 1)) || p.MemoryKiB > 1<<22) {
		return fmt.Errorf("password_hash.memory_kib %d: want 8×threads..4194304", p.MemoryKiB)
	}
	if p.MaxConcurrent < 0 {
		return errors.New("password_hash.max_concurrent must not be negative")
	}
	return nil
}

// federationConfig is the "federation" section of config.json.
type federationConfig struct {
	Address       string   `json:"address,omitempty"`         // published HOST:PORT (delegation); default: the bound address
	BackoffBase   duration `json:"backoff_base,omitempty"`    // first retry delay ceiling; default 500ms
	BackoffMax    duration `json:"backoff_max,omitempty"`     // largest retry delay; default 5m
	Expiry        duration `json:"expiry,omitempty"`          // undeliverable envelopes fail after this; default 168h
	SendWait      duration `json:"send_wait,omitempty"`       // a Send to a remote hub waits this long for its verdict; default 5s
	RatePerSecond float64  `json:"rate_per_second,omitempty"` // inbound transactions per origin; default 50
	RateBurst     float64  `json:"rate_burst,omitempty"`      // default 200
	// KeyRefreshInterval: least time between two re-fetches of a peer's key document; default 30s.
	KeyRefreshInterval duration `json:"key_refresh_interval,omitempty"`
	// ExtraRoots is a PEM file of CAs trusted besides the system roots
	// for discovery (https://DOMAIN/.well-known/hearth/server) and for
	// discovered peers; relative to the data folder.
	ExtraRoots string `json:"extra_roots,omitempty"`
	// TestHosts is a TEST SETTING: discovery resolves these names (.test
	// and .example included) to loopback, fetching the key document of
	// NAME from the HOST:PORT given, and no other name; a discovered
	// document may then name a loopback federation address. Never set it
	// on a server of a real domain.
	TestHosts map[string]string `json:"test_hosts,omitempty"`
	// KeyValidity: the validity window published for the current federation
	// key; peers fetch the key document again when it ends, so they learn
	// of a rotation within it. Default 1m.
	KeyValidity duration `json:"key_validity,omitempty"`
}

func (f *federationConfig) validate() error {
	if f == nil {
		return nil
	}
	for name, addr := range f.TestHosts {
		host, _, err := net.SplitHostPort(addr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("federation.test_hosts[%q] = %q: want a loopback IP:PORT", name, addr)
		}
	}
	return nil
}

type serverLimits struct {
	MaxFrameBytes   int      `json:"max_frame_bytes"`
	MaxMessageBytes int      `json:"max_message_bytes"`
	MaxCommitBytes  int      `json:"max_commit_bytes"` // a commit with its Welcome and GroupInfo (docs/decisions/0004); 0: 6 MiB
	Retention       duration `json:"retention"`        // acknowledged mailbox entries kept this long
	SendPerSecond   float64  `json:"send_per_second"`  // per device
	SendBurst       int      `json:"send_burst"`       // per device
	MaxMembers      int      `json:"max_members"`      // devices per conversation
	MaxConnections  int      `json:"max_connections"`  // concurrent TCP connections
	MaxStreams      int64    `json:"max_streams"`      // concurrent QUIC streams per connection
	HistoryMaxLimit int      `json:"history_max_page"` // largest REST history page
	// AuthTimeout closes a client stream not authenticated this long after it opened; default 10s.
	AuthTimeout duration `json:"auth_timeout,omitempty"`
	// MaxMediaBytes is the largest media upload (encrypted file); 0: 100 MiB.
	MaxMediaBytes int64 `json:"max_media_bytes,omitempty"`
	// MediaQuotaBytes bounds one user's stored media; 0: 1 GiB, < 0: no quota.
	MediaQuotaBytes int64 `json:"media_quota_bytes,omitempty"`
	// MediaRetention: complete media are deleted this long after upload;
	// 0: 720h (30 days), < 0: kept until the uploader is deleted.
	MediaRetention duration `json:"media_retention,omitempty"`
}

// duration is a time.Duration written as "168h0m0s" in JSON.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"168h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// newServerConfig is the configuration `hearth init` writes: the limits
// spelled out so that an admin sees what can be changed.
func newServerConfig(domain, listen string) serverConfig {
	return serverConfig{
		Domain: domain,
		Listen: listen,
		Limits: serverLimits{
			MaxFrameBytes:   8 << 20,
			MaxMessageBytes: 256 << 10,
			MaxCommitBytes:  6 << 20,
			Retention:       duration(7 * 24 * time.Hour),
			SendPerSecond:   50,
			SendBurst:       100,
			MaxMembers:      1024,
			MaxConnections:  10000,
			MaxStreams:      16,
			HistoryMaxLimit: 500,
			MaxMediaBytes:   100 << 20,
			MediaQuotaBytes: 1 << 30,
			MediaRetention:  duration(30 * 24 * time.Hour),
		},
	}
}

func (c serverConfig) validate() error {
	if c.Domain == "" || strings.ContainsAny(c.Domain, "@/ \t:") || strings.ToLower(c.Domain) != c.Domain {
		return fmt.Errorf("domain %q: want a lowercase DNS name such as chat.example.org", c.Domain)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		return fmt.Errorf("listen %q: want HOST:PORT", c.Listen)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file go together")
	}
	if c.LogLevel != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
		}
	}
	if c.ACME != nil && c.CertFile != "" {
		return errors.New("acme and tls_cert_file exclude each other: choose where the certificate comes from")
	}
	if err := c.ACME.validate(c.Domain); err != nil {
		return err
	}
	if err := c.Federation.validate(); err != nil {
		return err
	}
	l := c.Limits
	if l.MaxFrameBytes < 0 || l.MaxMessageBytes < 0 || l.Retention < 0 || l.SendPerSecond < 0 ||
		l.SendBurst < 0 || l.MaxMembers < 0 || l.MaxConnections < 0 || l.MaxStreams < 0 || l.HistoryMaxLimit < 0 || l.MaxMediaBytes < 0 {
		return errors.New("limits must not be negative (0 means the default)")
	}
	if l.MaxFrameBytes > 0 && l.MaxMessageBytes > l.MaxFrameBytes {
		return errors.New("limits: max_message_bytes exceeds max_frame_bytes")
	}
	if l.MaxCommitBytes < 0 || (l.MaxFrameBytes > 0 && l.MaxCommitBytes > l.MaxFrameBytes) {
		return errors.New("limits: max_commit_bytes must be between 0 (default) and max_frame_bytes")
	}
	if l.MaxCommitBytes > 0 && l.MaxCommitBytes < l.MaxMessageBytes {
		return errors.New("limits: max_commit_bytes is below max_message_bytes")
	}
	if p := c.Presence; p != nil && (p.Refresh < 0 || p.Lease < 0 || (p.Refresh > 0 && p.Refresh < duration(100*time.Millisecond))) {
		return errors.New("presence: refresh must be 0 (default) or at least 100ms, lease not negative")
	}
	return c.PasswordHash.validate()
}

func (c serverConfig) homeserverConfig(version string) homeserver.Config {
	return homeserver.Config{
		Domain:          c.Domain,
		MaxFrame:        c.Limits.MaxFrameBytes,
		MaxMessageBytes: c.Limits.MaxMessageBytes,
		MaxCommitBytes:  c.Limits.MaxCommitBytes,
		Retention:       time.Duration(c.Limits.Retention),
		RateLimit:       homeserver.RateLimit{PerSecond: c.Limits.SendPerSecond, Burst: c.Limits.SendBurst},
		MaxMembers:      c.Limits.MaxMembers,
		AuthTimeout:     time.Duration(c.Limits.AuthTimeout),
		Version:         version,
		Federation:      c.federationConfig(),
		Password:        c.passwordParams(),
		Presence:        c.presenceConfig(),
		Media: homeserver.MediaConfig{MaxBytes: c.Limits.MaxMediaBytes, Quota: c.Limits.MediaQuotaBytes,
			Retention: time.Duration(c.Limits.MediaRetention)},
	}
}

func (c serverConfig) presenceConfig() homeserver.PresenceConfig {
	if c.Presence == nil {
		return homeserver.PresenceConfig{}
	}
	return homeserver.PresenceConfig{Refresh: time.Duration(c.Presence.Refresh), Lease: time.Duration(c.Presence.Lease)}
}

func (c serverConfig) passwordParams() homeserver.PasswordParams {
	p := c.PasswordHash
	if p == nil {
		return homeserver.PasswordParams{}
	}
	return homeserver.PasswordParams{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads, MaxConcurrent: p.MaxConcurrent}
}

func (c serverConfig) federationConfig() homeserver.FederationConfig {
	f := c.Federation
	if f == nil {
		return homeserver.FederationConfig{}
	}
	return homeserver.FederationConfig{
		Address:            f.Address,
		SendWait:           time.Duration(f.SendWait),
		RatePerSecond:      f.RatePerSecond,
		RateBurst:          f.RateBurst,
		KeyRefreshInterval: time.Duration(f.KeyRefreshInterval),
		KeyValidity:        time.Duration(f.KeyValidity),
		Outbound: federation.OutboundConfig{
			Backoff: federation.Backoff{Base: time.Duration(f.BackoffBase), Max: time.Duration(f.BackoffMax)},
			Expiry:  time.Duration(f.Expiry),
		},
	}
}

func (c serverConfig) transportConfig() transport.Config {
	return transport.Config{
		MaxFrame:        c.Limits.MaxFrameBytes,
		MaxConns:        c.Limits.MaxConnections,
		MaxStreams:      c.Limits.MaxStreams,
		HistoryMaxLimit: c.Limits.HistoryMaxLimit,
		OriginPatterns:  c.Origin,
	}
}

func (c serverConfig) certsConfig(dir string) certs.Config {
	return certs.Config{Dir: dir, Domain: c.Domain, Hosts: append(certs.HostsFor(c.Domain, c.Listen), c.Hosts...)}
}

// loadServerConfig reads DIR/config.json; unknown fields are errors so that
// typos do not pass silently.
func loadServerConfig(dir string) (serverConfig, error) {
	var c serverConfig
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, fmt.Errorf("%s is not initialized (no %s); run: hearth init --dir %s", dir, configFile, dir)
	}
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", filepath.Join(dir, configFile), err)
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("%s: %w", filepath.Join(dir, configFile), err)
	}
	return c, nil
}

// defaultServerDir is $HEARTH_DIR, else $XDG_DATA_HOME/hearth, else
// ~/.local/share/hearth.
func defaultServerDir() (string, error) {
	if d := os.Getenv("HEARTH_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "hearth"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data folder: set --dir or $HEARTH_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "hearth"), nil
}

// createSigningKey writes a new Ed25519 key unless one exists.
func createSigningKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		_, err := homeserver.ReadTokenKeyFile(path)
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return certs.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// createFederationKey writes a new federation key to path unless a key is
// there already.
func createFederationKey(path string) error {
	if k, err := serverkey.ReadFile(path); k != nil || err != nil {
		return err
	}
	k, err := serverkey.Generate(rand.Reader)
	if err != nil {
		return err
	}
	return serverkey.WriteKeyFile(path, k.MarshalPEM())
}

// readFederationKey is the federation key a server starts with: DIR/
// federation.key, or, in a folder made before federation keys had their
// own file, the access-token key's seed (the federation key such a server
// has always published); the homeserver then writes it to federation.key.
func readFederationKey(dir string, tokenKey ed25519.PrivateKey) (*serverkey.Key, error) {
	k, err := serverkey.ReadFile(filepath.Join(dir, fedKeyFile))
	if err != nil || k != nil {
		return k, err
	}
	return serverkey.FromSeed(tokenKey.Seed())
}
