package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/storage"
)

const testDomain = "a.example"

// clock is a settable test clock.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []clockTimer
}

// clockTimer is a pending After: it fires when Add moves the clock to at.
type clockTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock and fires the timers that are due.
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.t) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.t
	}
	c.timers = kept
	c.mu.Unlock()
}

// After is time.After on this clock.
func (c *clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, clockTimer{at: c.t.Add(d), ch: ch})
	return ch
}

// pending is how many timers wait.
func (c *clock) pending() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.timers) }

// harness is a real server on a real SQLite file.
type harness struct {
	t     testing.TB
	path  string
	key   ed25519.PrivateKey
	cfg   Config
	clock *clock
	// timers: the server's timers run on clock too (Deps.After).
	timers bool
	db     *storage.DB
	s      *Server
	// accounts made by firstDevice, by name
	accounts map[string]*account
	// from is the client address connect uses ("pipe" if empty: not
	// loopback, so the per-address login limits apply).
	from string
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	return newHarnessTimers(t, cfg, false)
}

// newHarnessTimers is newHarness with the server's timers on the test's
// clock when timers is set.
func newHarnessTimers(t testing.TB, cfg Config, timers bool) *harness {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cfg.Domain = testDomain
	cfg.UnverifiedCommits = true // these tests' commits are not MLS (commit(); hub tests verify real ones)
	if cfg.RetentionInterval == 0 {
		cfg.RetentionInterval = -1 // tests run retention by hand
	}
	if cfg.Password.MemoryKiB == 0 {
		cfg.Password = PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1} // fast; the defaults are tested in password_test
	}
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "hearth.db"), key: key, cfg: cfg,
		clock: &clock{t: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}, timers: timers, accounts: map[string]*account{}}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	db, err := storage.Open(h.path, storage.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	deps := Deps{DB: db, SigningKey: h.key, Now: h.clock.Now}
	if h.timers {
		deps.After = h.clock.After
	}
	s, err := New(h.cfg, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db, h.s = db, s
}

func (h *harness) stop() {
	if h.s != nil {
		h.s.Close()
		h.db.Close()
		h.s, h.db = nil, nil
	}
}

// restart closes the server and database and opens both again on the same file.
func (h *harness) restart() { h.stop(); h.start() }

func (h *harness) addUser(name string) {
	h.t.Helper()
	if _, err := h.s.UserAdd(context.Background(), name, []byte("password-"+name), false); err != nil {
		h.t.Fatal(err)
	}
}

// client is a test client speaking the wire protocol over net.Pipe.
type client struct {
	t      testing.TB
	conn   net.Conn
	fw     *wire.FrameWriter
	mu     sync.Mutex
	nextID uint64
	waits  map[uint64]chan *wire.ServerFrame
	pushes chan *wire.ServerFrame
	done   chan struct{}
	// Filled by login/hello.
	user, device, access, refresh string
}

func (h *harness) connect() *client {
	h.t.Helper()
	if h.from != "" {
		return h.connectFrom(h.from)
	}
	return h.connectFrom("pipe")
}

// connectFrom is connect from the client address remote ("host:port").
func (h *harness) connectFrom(remote string) *client {
	h.t.Helper()
	srv, cli := net.Pipe()
	go h.s.ServeStream(context.Background(), srv, remote)
	c := &client{t: h.t, conn: cli, fw: wire.NewFrameWriter(cli, 0), waits: map[uint64]chan *wire.ServerFrame{},
		pushes: make(chan *wire.ServerFrame, 100000), done: make(chan struct{})}
	go c.readLoop()
	h.t.Cleanup(func() { cli.Close() })
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	fr := wire.NewFrameReader(c.conn, 0)
	for {
		f := &wire.ServerFrame{}
		if err := fr.ReadMessage(f); err != nil {
			return
		}
		if f.Id == 0 {
			c.pushes <- f
			continue
		}
		c.mu.Lock()
		ch := c.waits[f.Id]
		delete(c.waits, f.Id)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
	}
}

// start sends a request and returns a channel for its answer.
func (c *client) start(f *wire.ClientFrame) <-chan *wire.ServerFrame {
	c.t.Helper()
	ch := make(chan *wire.ServerFrame, 1)
	c.mu.Lock()
	c.nextID++
	f.Id = c.nextID
	c.waits[f.Id] = ch
	c.mu.Unlock()
	if err := c.fw.WriteMessage(f); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return ch
}

// wait is a hang guard, not a performance limit.
const wait = 20 * time.Second

func (c *client) await(ch <-chan *wire.ServerFrame) *wire.ServerFrame {
	c.t.Helper()
	select {
	case f := <-ch:
		return f
	case <-c.done:
		c.t.Fatal("stream ended while waiting for an answer")
	case <-time.After(wait):
		c.t.Fatal("no answer")
	}
	return nil
}

func (c *client) call(f *wire.ClientFrame) *wire.ServerFrame {
	c.t.Helper()
	return c.await(c.start(f))
}

// must calls and fails the test on an error answer.
func (c *client) must(f *wire.ClientFrame) *wire.ServerFrame {
	c.t.Helper()
	r := c.call(f)
	if e := r.GetError(); e != nil {
		c.t.Fatalf("%T: %v %s", f.Body, e.Code, e.Message)
	}
	return r
}

// fails calls and checks the error code.
func (c *client) fails(f *wire.ClientFrame, code wire.Code) *wire.ErrorInfo {
	c.t.Helper()
	r := c.call(f)
	if r.GetError().GetCode() != code {
		c.t.Fatalf("%T: got %v, want %v", f.Body, r, code)
	}
	return r.GetError()
}

// push returns the next server push.
func (c *client) push() *wire.ServerFrame {
	c.t.Helper()
	select {
	case f := <-c.pushes:
		return f
	case <-time.After(wait):
		c.t.Fatal("no push")
	}
	return nil
}

// deliveries collects n Delivery pushes, skipping typing/presence.
func (c *client) deliveries(n int) []*wire.Delivery {
	c.t.Helper()
	var out []*wire.Delivery
	for len(out) < n {
		if d := c.push().GetDelivery(); d != nil {
			out = append(out, d)
		}
	}
	return out
}

// noDelivery checks that no Delivery is queued after a round trip.
func (c *client) noDelivery() {
	c.t.Helper()
	c.must(ping())
	for {
		select {
		case f := <-c.pushes:
			if f.GetDelivery() != nil {
				c.t.Fatalf("unexpected delivery seq %d", f.GetDelivery().Seq)
			}
		default:
			return
		}
	}
}

// closed waits for SessionClosed and the end of the stream.
func (c *client) closed(code wire.Code) {
	c.t.Helper()
	for {
		f := c.push()
		if sc := f.GetClosed(); sc != nil {
			if sc.Code != code {
				c.t.Fatalf("SessionClosed %v, want %v", sc.Code, code)
			}
			break
		}
	}
	select {
	case <-c.done:
	case <-time.After(wait):
		c.t.Fatal("stream not closed after SessionClosed")
	}
}

func ping() *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Ping{Ping: &wire.Ping{}}}
}

func (c *client) login(user, password string, link []byte) *wire.LoginOK {
	c.t.Helper()
	r := c.must(&wire.ClientFrame{Body: &wire.ClientFrame_Login{Login: &wire.Login{User: user, Password: password, DeviceName: "test", LinkPublicKey: link}}})
	ok := r.GetLoginOk()
	c.user, c.device, c.access, c.refresh = ok.User, ok.DeviceId, ok.AccessToken, ok.RefreshToken
	return ok
}

func (c *client) hello(token string) *wire.ServerFrame {
	return c.call(&wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: token}}})
}

func (c *client) addr() string { return c.user + "/" + c.device }

// account is a user with an identity key and devices.
type account struct {
	name   string
	signer *identity.Signer
	list   *identity.DeviceList
}

func newAccount(t testing.TB, name string) *account {
	rk, err := identity.NewRecoveryKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := identity.ParseUser(name + "@" + testDomain)
	return &account{name: name, signer: rk.Signer(), list: &identity.DeviceList{User: u}}
}

func sigKey(id string) []byte { return []byte("mls-signature-key-of-" + id) }

// withDevice returns the signed successor list including device id.
func (a *account) withDevice(t testing.TB, id string) *wire.SignedDeviceList {
	t.Helper()
	return a.withDeviceKey(t, id, sigKey(id))
}

func (a *account) withDeviceKey(t testing.TB, id string, key []byte) *wire.SignedDeviceList {
	t.Helper()
	next, err := a.list.WithDevice(identity.Device{DeviceID: id, SignatureKey: key, Name: "d"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	a.list = next
	return a.sign(t)
}

func (a *account) withoutDevice(t testing.TB, id string) *wire.SignedDeviceList {
	t.Helper()
	next, err := a.list.WithoutDevice(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	a.list = next
	return a.sign(t)
}

func (a *account) sign(t testing.TB) *wire.SignedDeviceList {
	t.Helper()
	l, sig, err := a.list.Sign(a.signer)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.SignedDeviceList{List: l, Signature: sig}
}

// firstDevice logs a fresh user's first device in and publishes the identity.
func (h *harness) firstDevice(name string) (*client, *account) {
	h.t.Helper()
	h.addUser(name)
	a := newAccount(h.t, name)
	h.accounts[name] = a
	c := h.connect()
	ok := c.login(name, "password-"+name, nil)
	if !ok.FirstDevice || ok.Status != wire.DeviceStatus_DEVICE_STATUS_ACTIVE {
		h.t.Fatalf("first device: %v", ok)
	}
	c.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishIdentity{PublishIdentity: &wire.PublishIdentity{
		IdentityKey: a.signer.Public().Bytes(), DeviceList: a.withDevice(h.t, ok.DeviceId)}}})
	return c, a
}

func createConv(c *client, id string) *wire.ConversationInfo {
	c.t.Helper()
	return c.must(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_GROUP}}}).GetConversation()
}

func sendFrame(conv, msgID string, kind wire.MessageKind, epoch uint64, payload string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: &wire.Send{ConversationId: conv, MessageId: msgID, Kind: kind,
		Epoch: epoch, Payload: []byte(payload)}}}
}

func appMsg(conv, msgID string, epoch uint64, payload string) *wire.ClientFrame {
	return sendFrame(conv, msgID, wire.MessageKind_MESSAGE_KIND_APPLICATION, epoch, payload)
}

func commit(conv, msgID string, epoch uint64, add, remove []string) *wire.ClientFrame {
	f := sendFrame(conv, msgID, wire.MessageKind_MESSAGE_KIND_COMMIT, epoch, "commit-"+msgID)
	s := f.GetSend()
	s.AddDevices, s.RemoveDevices = add, remove
	if len(add) > 0 {
		s.Welcome = []byte("welcome-" + msgID)
	}
	s.GroupInfo = []byte(fmt.Sprint("group-info-epoch-", epoch+1))
	return f
}

func syncFrame(after uint64) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{AfterSeq: after}}}
}

func ackFrame(up uint64) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_Ack{Ack: &wire.Ack{UpToSeq: up}}}
}
