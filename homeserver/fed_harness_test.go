package homeserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hearth/federation"
	"hearth/homeserver/certs"
	"hearth/homeserver/transport"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// fedNode is one real homeserver with its own SQLite file, serving the
// federation endpoints over real QUIC on 127.0.0.1.
type fedNode struct {
	t      testing.TB
	domain string
	dir    string
	key    ed25519.PrivateKey
	skey   *serverkey.Key
	cfg    Config
	db     *storage.DB
	s      *Server
	tr     *transport.Server
	pc     net.PacketConn
	ln     net.Listener
	logs   *syncBuffer
	addr   string // HOST:PORT, kept across restarts
	caPEM  []byte
	skew   atomic.Int64 // added to the server's clock (time.Duration)
}

func fedTestConfig(domain string) Config {
	return Config{Domain: domain, RetentionInterval: -1, UnverifiedCommits: true, // commits here are not MLS
		Password: PasswordParams{Time: 1, MemoryKiB: 1024, Threads: 1},
		Federation: FederationConfig{SendWait: 3 * time.Second,
			Outbound: federation.OutboundConfig{Backoff: federation.Backoff{Base: 50 * time.Millisecond, Max: 400 * time.Millisecond}}}}
}

func newFedNode(t testing.TB, domain string) *fedNode {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	skey, err := serverkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := &fedNode{t: t, domain: domain, dir: t.TempDir(), key: key, skey: skey, cfg: fedTestConfig(domain), addr: "127.0.0.1:0"}
	n.cfg.KeyDir = n.dir
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *fedNode) start() {
	t := n.t
	t.Helper()
	db, err := storage.Open(filepath.Join(n.dir, "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n.logs == nil {
		n.logs = &syncBuffer{}
	}
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	now := func() time.Time { return time.Now().Add(time.Duration(n.skew.Load())) }
	s, err := New(n.cfg, Deps{DB: db, SigningKey: n.key, ServerKey: n.skey, Log: log, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ccfg := certs.Config{Dir: n.dir, Domain: n.domain, Hosts: certs.HostsFor(n.domain, "127.0.0.1:0")}
	if _, err := os.Stat(filepath.Join(n.dir, certs.CAFile)); err != nil {
		if err := certs.Init(ccfg, certs.Deps{}); err != nil {
			t.Fatal(err)
		}
	}
	cm, err := certs.NewManager(ccfg, certs.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if n.caPEM, err = os.ReadFile(cm.CAPath()); err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Config{}, transport.Deps{Streams: s, TLS: cm.TLSConfig(), Federation: s.FederationHandler(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ { // a restart rebinds the same port; the old socket may linger a moment
		if pc, ln, err = transport.Listen(n.addr); err == nil {
			break
		}
		if i == 50 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.addr = ln.Addr().String()
	s.SetFederationAddress(n.addr)
	go tr.ServeQUIC(pc)
	go tr.ServeTLS(ln)
	n.db, n.s, n.tr, n.pc, n.ln = db, s, tr, pc, ln
}

// stop ends the server abruptly for its peers (connections closed, no goodbye).
func (n *fedNode) stop() {
	if n.s == nil {
		return
	}
	n.tr.Close()
	n.s.Close()
	n.db.Close()
	n.pc.Close()
	n.ln.Close()
	n.s, n.db = nil, nil
}

func (n *fedNode) restart() { n.stop(); n.start() }

// pin makes each node trust the others (both ways).
func pinAll(t testing.TB, nodes ...*fedNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if _, err := a.s.FederationPeerAdd(context.Background(), b.domain, b.addr, b.caPEM); err != nil {
				t.Fatalf("%s pins %s: %v", a.domain, b.domain, err)
			}
		}
	}
}

// connect opens a client session to this node over a pipe.
func (n *fedNode) connect() *client {
	n.t.Helper()
	srv, cli := net.Pipe()
	go n.s.ServeStream(context.Background(), srv, "pipe")
	c := &client{t: n.t, conn: cli, fw: wire.NewFrameWriter(cli, 0), waits: map[uint64]chan *wire.ServerFrame{},
		pushes: make(chan *wire.ServerFrame, 100000), done: make(chan struct{})}
	go c.readLoop()
	n.t.Cleanup(func() { cli.Close() })
	return c
}

// fedUser is a user on a node with its identity and devices.
type fedUser struct {
	node *fedNode
	acct *account
	name string
}

// addUser creates name on the node and logs its first device in.
func (n *fedNode) addUser(name string) (*fedUser, *client) {
	n.t.Helper()
	if _, err := n.s.UserAdd(context.Background(), name, []byte("password-"+name), false); err != nil {
		n.t.Fatal(err)
	}
	rk, err := identity.NewRecoveryKey(rand.Reader)
	if err != nil {
		n.t.Fatal(err)
	}
	u, _ := identity.ParseUser(name + "@" + n.domain)
	a := &account{name: name, signer: rk.Signer(), list: &identity.DeviceList{User: u}}
	c := n.connect()
	ok := c.login(name, "password-"+name, nil)
	c.must(&wire.ClientFrame{Body: &wire.ClientFrame_PublishIdentity{PublishIdentity: &wire.PublishIdentity{
		IdentityKey: a.signer.Public().Bytes(), DeviceList: a.withDevice(n.t, ok.DeviceId)}}})
	return &fedUser{node: n, acct: a, name: name}, c
}

// resume opens a new session for old's device (its access token) and syncs after seq.
func (n *fedNode) resume(old *client, after uint64) *client {
	n.t.Helper()
	c := n.connect()
	c.user, c.device, c.access, c.refresh = old.user, old.device, old.access, old.refresh
	if r := c.hello(old.access); r.GetError() != nil {
		n.t.Fatalf("hello: %v", r)
	}
	c.must(syncFrame(after))
	return c
}

// sendRetry sends f until it is answered other than UNAVAILABLE (the hub
// unreachable), as a client retries with the same message id.
func sendRetry(t testing.TB, c *client, f *wire.ClientFrame, within time.Duration) *wire.SendOK {
	t.Helper()
	end := time.Now().Add(within)
	for {
		r := c.call(f)
		if ok := r.GetSendOk(); ok != nil {
			return ok
		}
		if e := r.GetError(); e == nil || e.Code != wire.Code_CODE_UNAVAILABLE || time.Now().After(end) {
			t.Fatalf("send %s: %v", f.GetSend().GetMessageId(), r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// collect reads deliveries until n arrived (acking them), or fails.
func collect(t testing.TB, c *client, n int, within time.Duration) []*wire.Delivery {
	t.Helper()
	var out []*wire.Delivery
	deadline := time.After(within)
	for len(out) < n {
		select {
		case f := <-c.pushes:
			if d := f.GetDelivery(); d != nil {
				out = append(out, d)
				c.start(ackFrame(d.Seq))
			}
		case <-deadline:
			t.Fatalf("%s: got %d of %d deliveries", c.addr(), len(out), n)
		}
	}
	return out
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// createFedConv creates a conversation of kind DIRECT: the hub then checks
// no group-admin signature (decision 0003), so the tests can use opaque
// payloads; federation treats both kinds alike.
func createFedConv(c *client, id string) *wire.ConversationInfo {
	c.t.Helper()
	return c.must(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: id, Kind: wire.ConversationKind_CONVERSATION_KIND_DIRECT}}}).GetConversation()
}

// groupOfThree starts a.example, b.example and c.example with alice, bob
// and carol, and a conversation hubbed on a.example with the three of
// them; each has synced and the followers have their welcomes.
func groupOfThree(t *testing.T) (a, b, c *fedNode, alice, bob, carol *client, conv string) {
	t.Helper()
	a, b, c = newFedNode(t, "a.example"), newFedNode(t, "b.example"), newFedNode(t, "c.example")
	pinAll(t, a, b, c)
	_, alice = a.addUser("alice")
	_, bob = b.addUser("bob")
	_, carol = c.addUser("carol")
	for _, cl := range []*client{alice, bob, carol} {
		cl.must(syncFrame(0))
	}
	conv = "group@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr(), carol.addr()))
	collect(t, bob, 1, fedWait)
	collect(t, carol, 1, fedWait)
	return a, b, c, alice, bob, carol, conv
}

// awaitPush returns c's next push that match accepts, skipping others.
func awaitPush(t *testing.T, c *client, what string, match func(*wire.ServerFrame) bool) *wire.ServerFrame {
	t.Helper()
	deadline := time.After(fedWait)
	for {
		select {
		case f := <-c.pushes:
			if match(f) {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: no %s", c.user, what)
			return nil
		}
	}
}

// noPush checks that c gets no push that match accepts within a while.
func noPush(t *testing.T, c *client, within time.Duration, match func(*wire.ServerFrame) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f := <-c.pushes:
			if match(f) {
				t.Fatalf("%s: unexpected push %v", c.user, f)
			}
		case <-deadline:
			return
		}
	}
}
