package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"hearth/client"
	"hearth/client/e2ee"
	"hearth/homeserver/admin"
)

// Users creates accounts on the server under test. cmd/hearth implements
// it with the admin socket.
type Users interface {
	CreateUser(ctx context.Context, name string, password []byte) error
}

// Config is what every workload needs.
type Config struct {
	Server     string          // HOST:PORT of the homeserver
	CAPath     string          // PEM of the server's CA
	Domain     string          // the server's domain (users are NAME@Domain)
	Dial       client.DialFunc // opens a control stream; retried with backoff here
	Groups     func() e2ee.Engine
	Users      Users
	ProfileDir string // one sub-folder per simulated device
	Parallel   int    // concurrent setup steps (logins); default 8
	// DialConcurrency bounds the dial attempts in flight (default 32):
	// thousands of clients reconnecting at once would otherwise overrun
	// the server's QUIC accept queue and their own handshake timeouts.
	DialConcurrency int
	ServerPID       int // 0: server CPU and RSS are not reported
	Logger          *slog.Logger
	Progress        io.Writer // progress lines; nil: none
	Now             func() time.Time
	// Stages reads the server's stage histograms (its admin status); nil:
	// the report has no server stages.
	Stages func(ctx context.Context) (map[string]admin.Histogram, error)
	// Receipts makes the devices send delivery receipts and mark what
	// they receive read (read receipts), as a chat app showing each
	// message does; off, they send no receipts at all.
	Receipts bool
	// MediaConnections is the devices' client.Config.MediaConnections
	// (0: the client's default).
	MediaConnections int
	// AckDelay is the devices' session.Config.AckDelay, full clients and
	// wire sessions alike (0: session.DefaultAckDelay; negative: every
	// Ack at once).
	AckDelay time.Duration
}

func (c *Config) defaults() error {
	if c.Server == "" || c.Dial == nil || c.Groups == nil || c.Users == nil || c.ProfileDir == "" || c.Domain == "" {
		return errors.New("loadgen: server, domain, dialer, group engine, users and profile folder are required")
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = 32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// Device is one simulated user with one device.
type Device struct {
	Index   int
	Name    string // local part
	Address string // name@domain
	Profile string
	C       *client.Client
}

// Fleet holds the simulated devices of one bench run.
type Fleet struct {
	cfg     Config
	run     string // random run id: names and message tags
	Devices []*Device
	dials   atomic.Int64  // dial attempts that failed and were retried
	dialSem chan struct{} // one token per dial attempt in flight

	stageMark map[string]admin.Histogram // server stages at the start of the measurement (stages.go)
	stageErr  error
}

// NewFleet checks cfg and picks a run id.
func NewFleet(cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, run: hex.EncodeToString(b[:]), dialSem: make(chan struct{}, cfg.DialConcurrency)}
	inner := cfg.Dial
	f.cfg.Dial = func(ctx context.Context, addr, ca string) (io.ReadWriteCloser, error) {
		return f.dialRetry(ctx, inner, addr, ca)
	}
	return f, nil
}

// Run is the id that tags this run's users and messages.
func (f *Fleet) Run() string { return f.run }

// DialRetries is how many dials failed and were retried.
func (f *Fleet) DialRetries() int64 { return f.dials.Load() }

// dialRetry retries a failed dial with exponential backoff and jitter,
// with at most cfg.DialConcurrency attempts in flight: quic-go refuses
// handshakes beyond its accept queue, and a burst of thousands of sessions
// would otherwise fail instead of queueing.
func (f *Fleet) dialRetry(ctx context.Context, dial client.DialFunc, addr, ca string) (io.ReadWriteCloser, error) {
	wait := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		c, err := f.dialOnce(ctx, dial, addr, ca)
		if err == nil || attempt == 7 || ctx.Err() != nil {
			return c, err
		}
		f.dials.Add(1)
		d := wait/2 + mrand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
		wait = min(2*wait, 3*time.Second)
	}
}

func (f *Fleet) dialOnce(ctx context.Context, dial client.DialFunc, addr, ca string) (io.ReadWriteCloser, error) {
	select {
	case f.dialSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.dialSem }()
	return dial(ctx, addr, ca)
}

// Add creates n users and logs one device in for each, at most
// cfg.Parallel at a time. Devices are appended in index order.
func (f *Fleet) Add(ctx context.Context, n int) ([]*Device, error) {
	return f.addEach(ctx, n, nil)
}

// addEach is Add that runs then(i, d) right after device i (0..n-1) of
// this call logged in, in the same parallel step (nil: nothing).
func (f *Fleet) addEach(ctx context.Context, n int, then func(i int, d *Device) error) ([]*Device, error) {
	base := len(f.Devices)
	out := make([]*Device, n)
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, f.cfg.Parallel)
		mu    sync.Mutex
		first error
		done  atomic.Int64
	)
	start := f.cfg.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := f.login(ctx, base+i)
			if err == nil && then != nil {
				err = then(i, d)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out[i] = d
			if k := done.Add(1); k%50 == 0 || int(k) == n {
				fmt.Fprintf(f.cfg.Progress, "setup: %d/%d devices logged in (%.0fs)\n", k, n, f.cfg.Now().Sub(start).Seconds())
			}
		}()
	}
	wg.Wait()
	for _, d := range out {
		if d != nil {
			f.Devices = append(f.Devices, d)
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

func (f *Fleet) login(ctx context.Context, i int) (*Device, error) {
	name := fmt.Sprintf("b%su%d", f.run, i)
	pw := []byte("bench-" + f.run + "-password")
	if err := f.cfg.Users.CreateUser(ctx, name, pw); err != nil {
		return nil, fmt.Errorf("loadgen: create user %s: %w", name, err)
	}
	d := &Device{Index: i, Name: name, Address: name + "@" + f.cfg.Domain, Profile: filepath.Join(f.cfg.ProfileDir, name)}
	if err := f.Open(d); err != nil {
		return nil, err
	}
	_, err := d.C.Login(ctx, client.LoginParams{User: d.Address, Password: string(pw), Server: f.cfg.Server,
		CAPath: f.cfg.CAPath, DeviceName: "bench"})
	if err != nil {
		d.C.Close()
		return nil, fmt.Errorf("loadgen: login %s: %w", d.Address, err)
	}
	return d, nil
}

// Open (re)opens d's client on its profile.
func (f *Fleet) Open(d *Device) error {
	if err := os.MkdirAll(d.Profile, 0o700); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	c, err := client.Open(client.Config{Profile: d.Profile, Dial: f.cfg.Dial, Groups: f.cfg.Groups(),
		Logger: f.cfg.Logger, Now: f.cfg.Now, MinBackoff: 50 * time.Millisecond, MaxBackoff: 3 * time.Second,
		NoDeliveryReceipts: !f.cfg.Receipts, MediaConnections: f.cfg.MediaConnections, AckDelay: f.cfg.AckDelay})
	if err != nil {
		return fmt.Errorf("loadgen: open profile %s: %w", d.Profile, err)
	}
	d.C = c
	return nil
}

// CloseDevice ends d's session and closes its store (the device goes
// offline; its profile stays).
func (f *Fleet) CloseDevice(d *Device) error {
	if d.C == nil {
		return nil
	}
	err := d.C.Close()
	d.C = nil
	return err
}

// Close closes every device.
func (f *Fleet) Close() error {
	var errs []error
	for _, d := range f.Devices {
		errs = append(errs, f.CloseDevice(d))
	}
	return errors.Join(errs...)
}
