package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ctransport "hearth/client/transport"
	"hearth/homeserver/admin"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
	"hearth/keys/identity"
	"hearth/keys/mls"
	"hearth/keys/mls/suite"
	"hearth/keys/testutil"
)

// fedServer is one `hearth serve` process of a federation test, on a
// fixed port so that its peers' pins survive its restarts.
type fedServer struct {
	domain, dir, listen string
	srv                 *server
}

func newFedServer(t *testing.T, domain string) *fedServer {
	t.Helper()
	f := &fedServer{domain: domain, dir: filepath.Join(t.TempDir(), domain), listen: freePort(t)}
	mustHearth(t, "", "init", "--dir", f.dir, "--domain", domain, "--listen", f.listen)
	// Short retry settings so that outages span several backoff steps quickly.
	f.editConfig(t, func(cfg map[string]any) {
		cfg["federation"] = map[string]any{"backoff_base": "50ms", "backoff_max": "500ms", "send_wait": "3s"}
	})
	f.start(t)
	return f
}

// editConfig rewrites f's config.json with edit applied (the server reads
// it when it next starts, some keys at SIGHUP).
func (f *fedServer) editConfig(t *testing.T, edit func(cfg map[string]any)) {
	t.Helper()
	path := filepath.Join(f.dir, configFile)
	var cfg map[string]any
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	edit(cfg)
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fedServer) start(t *testing.T) { f.srv = startServe(t, f.dir, nil, "--dir", f.dir) }

func (f *fedServer) admin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return mustHearth(t, stdin, append([]string{"admin", "--dir", f.dir}, args...)...)
}

func (f *fedServer) federation(t *testing.T) admin.FederationInfo {
	t.Helper()
	var info admin.FederationInfo
	if err := json.Unmarshal([]byte(f.admin(t, "", "federation", "list", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// e2eDevice is one device speaking the wire protocol to its server's
// process over the real client transport; it reconnects when the server
// goes away and acknowledges every delivery.
type e2eDevice struct {
	t      *testing.T
	fs     *fedServer
	user   string // user@domain
	device string
	access string
	signer *suite.Signer // its MLS signature key, on its signed list

	mu      sync.Mutex
	fw      *wire.FrameWriter
	conn    io.ReadWriteCloser
	nextID  uint64
	waits   map[uint64]chan *wire.ServerFrame
	byMbox  map[uint64]uint64 // mailbox seq -> conversation seq
	byConv  map[uint64]uint64 // conversation seq -> mailbox seq
	ids     map[uint64]string // conversation seq -> message id
	welcome int
	acked   uint64

	setbacks atomic.Int64 // sends that failed or were refused as unavailable
}

func newE2EDevice(t *testing.T, fs *fedServer, name string) *e2eDevice {
	t.Helper()
	mustHearth(t, "pw-"+name+"-secret\n", "admin", "--dir", fs.dir, "user", "add", name, "--password-stdin")
	d := &e2eDevice{t: t, fs: fs, user: name + "@" + fs.domain, byMbox: map[uint64]uint64{}, byConv: map[uint64]uint64{}, ids: map[uint64]string{}}
	c, fr, f := fs.srv.session(t, name, "pw-"+name+"-secret", false)
	ok := f.GetLoginOk()
	if ok == nil {
		t.Fatalf("login %s: %v", name, f)
	}
	d.device, d.access = ok.DeviceId, ok.AccessToken
	d.attach(c, fr)
	rk, err := identity.NewRecoveryKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := identity.ParseUser(d.user)
	s1, _ := suite.Lookup(1)
	if d.signer, err = s1.GenerateSignatureKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	l, err := (&identity.DeviceList{User: u}).WithDevice(identity.Device{DeviceID: d.device, SignatureKey: d.signer.Public(), Name: "e2e"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	list, sig, err := l.Sign(rk.Signer())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.call(&wire.ClientFrame{Body: &wire.ClientFrame_PublishIdentity{PublishIdentity: &wire.PublishIdentity{
		IdentityKey: rk.Signer().Public().Bytes(), DeviceList: &wire.SignedDeviceList{List: list, Signature: sig}}}}, 20*time.Second); err != nil || r.GetError() != nil {
		t.Fatalf("publish identity: %v %v", r, err)
	}
	if r, err := d.call(&wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{}}}, 20*time.Second); err != nil || r.GetError() != nil {
		t.Fatalf("sync: %v %v", r, err)
	}
	return d
}

func (d *e2eDevice) addr() string { return d.user + "/" + d.device }

// attach starts reading a new connection.
func (d *e2eDevice) attach(c io.ReadWriteCloser, fr *wire.FrameReader) {
	d.mu.Lock()
	d.conn, d.fw, d.waits = c, wire.NewFrameWriter(c, 0), map[uint64]chan *wire.ServerFrame{}
	fw := d.fw
	d.mu.Unlock()
	go func() {
		for {
			var f wire.ServerFrame
			if err := fr.ReadMessage(&f); err != nil {
				d.mu.Lock()
				if d.conn == c {
					d.conn = nil
				}
				d.mu.Unlock()
				c.Close()
				return
			}
			if del := f.GetDelivery(); del != nil && f.Id == 0 {
				d.record(del)
				fw.WriteMessage(&wire.ClientFrame{Body: &wire.ClientFrame_Ack{Ack: &wire.Ack{UpToSeq: del.Seq}}})
				continue
			}
			d.mu.Lock()
			if ch, ok := d.waits[f.Id]; ok && f.Id != 0 {
				ch <- &f
				delete(d.waits, f.Id)
			}
			d.mu.Unlock()
		}
	}()
}

// record keeps a delivery; a conversation message under two mailbox
// entries is a duplicate (a redelivery of one entry whose ack was lost is not).
func (d *e2eDevice) record(del *wire.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if del.Seq > d.acked {
		d.acked = del.Seq
	}
	if del.Kind == wire.MessageKind_MESSAGE_KIND_WELCOME {
		d.welcome++
		return
	}
	if old, ok := d.byConv[del.ConversationSeq]; ok && old != del.Seq {
		d.t.Errorf("%s: conversation seq %d delivered twice (mailbox %d and %d)", d.addr(), del.ConversationSeq, old, del.Seq)
	}
	d.byConv[del.ConversationSeq], d.byMbox[del.Seq], d.ids[del.ConversationSeq] = del.Seq, del.ConversationSeq, del.MessageId
}

// reconnect dials again (the server may be restarting) and resumes.
func (d *e2eDevice) reconnect() error {
	pool, err := certs.LoadCAPool(filepath.Join(d.fs.dir, certs.CAFile))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ctransport.Dial(ctx, d.fs.listen, ctransport.DialOptions{RootCAs: pool, ForceWebSocket: true})
	if err != nil {
		return err
	}
	d.attach(c, wire.NewFrameReader(c, 0))
	if r, err := d.call(&wire.ClientFrame{Body: &wire.ClientFrame_Hello{Hello: &wire.Hello{AccessToken: d.access}}}, 5*time.Second); err != nil || r.GetError() != nil {
		c.Close()
		return fmt.Errorf("hello: %v %v", r, err)
	}
	d.mu.Lock()
	after := d.acked
	d.mu.Unlock()
	if r, err := d.call(&wire.ClientFrame{Body: &wire.ClientFrame_Sync{Sync: &wire.Sync{AfterSeq: after}}}, 5*time.Second); err != nil || r.GetError() != nil {
		c.Close()
		return fmt.Errorf("sync: %v %v", r, err)
	}
	return nil
}

// call sends f on the current connection and waits for its answer.
func (d *e2eDevice) call(f *wire.ClientFrame, timeout time.Duration) (*wire.ServerFrame, error) {
	d.mu.Lock()
	if d.conn == nil {
		d.mu.Unlock()
		return nil, io.ErrClosedPipe
	}
	d.nextID++
	f.Id = d.nextID
	ch := make(chan *wire.ServerFrame, 1)
	d.waits[f.Id] = ch
	fw := d.fw
	d.mu.Unlock()
	if err := fw.WriteMessage(f); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer in %s", timeout)
	}
}

// send sends until the message is accepted, reconnecting and retrying
// with the same message id across outages; it returns the conversation seq.
func (d *e2eDevice) send(conv, id string, kind wire.MessageKind, epoch uint64, add []string) uint64 {
	m := &wire.Send{ConversationId: conv, MessageId: id, Kind: kind, Epoch: epoch, Payload: []byte("payload " + id), AddDevices: add}
	if len(add) > 0 {
		m.Welcome = []byte("welcome " + id)
	}
	return d.submit(m)
}

// submit sends m until the server accepts it (retrying while it answers
// CODE_UNAVAILABLE) and returns its conversation seq.
func (d *e2eDevice) submit(m *wire.Send) uint64 {
	id := m.MessageId
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r, err := d.call(&wire.ClientFrame{Body: &wire.ClientFrame_Send{Send: m}}, 10*time.Second)
		if err == nil && r.GetSendOk() != nil {
			return r.GetSendOk().ConversationSeq
		}
		if err == nil && r.GetError().GetCode() != wire.Code_CODE_UNAVAILABLE {
			d.t.Errorf("%s send %s: %v", d.addr(), id, r)
			return 0
		}
		d.setbacks.Add(1)
		if err != nil {
			for d.reconnect() != nil && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	d.t.Errorf("%s: %s never accepted", d.addr(), id)
	return 0
}

// await waits until the device holds every conversation seq in want,
// reconnecting whenever its connection is gone.
func (d *e2eDevice) await(t *testing.T, want map[uint64]string) {
	t.Helper()
	testutil.WaitFor(t, 90*time.Second, func() error {
		d.mu.Lock()
		var which []string
		for seq := range want {
			if _, ok := d.ids[seq]; !ok {
				which = append(which, fmt.Sprint(seq, "=", want[seq]))
			}
		}
		alive := d.conn != nil
		d.mu.Unlock()
		if len(which) == 0 {
			return nil
		}
		if !alive {
			d.reconnect()
		}
		return missingErr{d, which}
	})
}

// missingErr is await's condition: what the device misses. Its message
// holds the server's log, read only when the failure is reported.
type missingErr struct {
	d     *e2eDevice
	which []string
}

func (e missingErr) Error() string {
	return fmt.Sprintf("%s misses %d messages: %v\nits server's log:\n%s", e.d.addr(), len(e.which), e.which, e.d.fs.srv.log())
}

// peer is what f's federation list says about domain.
func (f *fedServer) peer(t *testing.T, domain string) admin.PeerInfo {
	t.Helper()
	for _, p := range f.federation(t).Peers {
		if p.Domain == domain {
			return p
		}
	}
	return admin.PeerInfo{Domain: domain}
}

// setbacks is how many sends of devices failed or were refused as
// unavailable, each retried.
func setbacks(devices []*e2eDevice) (n int64) {
	for _, d := range devices {
		n += d.setbacks.Load()
	}
	return n
}

// awaitSetback waits until a send of devices has failed since they had
// before setbacks: an outage has met the traffic.
func awaitSetback(t *testing.T, devices []*e2eDevice, before int64, outage string) {
	t.Helper()
	testutil.WaitFor(t, time.Minute, func() error {
		if setbacks(devices) == before {
			return fmt.Errorf("no send has met the outage (%s) yet", outage)
		}
		return nil
	})
}

// TestFederationE2E runs three `hearth serve` processes (a, b, c.example)
// pinned both ways through the admin CLI; a conversation hubbed at a has a
// device on each. While all three send concurrently, the follower b and
// then the hub a are SIGKILLed and restarted; then c is stopped for
// several backoff steps while a keeps sending. Afterwards every accepted
// message is at every device exactly once, in the hub's order, and all
// devices hold the same history.
func TestFederationE2E(t *testing.T) {
	parallelE2E(t)
	a, b, c := newFedServer(t, "a.example"), newFedServer(t, "b.example"), newFedServer(t, "c.example")
	servers := []*fedServer{a, b, c}
	for _, x := range servers {
		for _, y := range servers {
			if x == y {
				continue
			}
			out := x.admin(t, "", "federation", "peer", "add", y.domain, "--address", y.listen, "--ca", filepath.Join(y.dir, certs.CAFile))
			if want := fmt.Sprintf("peer %s pinned at %s\n", y.domain, y.listen); out != want {
				t.Fatalf("peer add printed %q, want %q", out, want)
			}
		}
	}
	list := a.admin(t, "", "federation", "list")
	for _, want := range []string{"domain: a.example", "mode:   open", "PEER", "b.example", "c.example", c.listen} {
		if !strings.Contains(list, want) {
			t.Fatalf("federation list lacks %q:\n%s", want, list)
		}
	}

	alice, bob, carol := newE2EDevice(t, a, "alice"), newE2EDevice(t, b, "bob"), newE2EDevice(t, c, "carol")
	devices := []*e2eDevice{alice, bob, carol}
	const conv = "trio@a.example"
	// A real MLS group: the hub verifies the creator's GroupInfo and the
	// commit adding bob and carol against their servers' signed lists.
	s1, _ := suite.Lookup(1)
	g, err := mls.NewGroup(mls.Config{Validator: mls.AcceptAll{}}, s1, []byte(conv), alice.signer, mls.BasicCredential(alice.addr()), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := alice.call(&wire.ClientFrame{Body: &wire.ClientFrame_CreateConversation{CreateConversation: &wire.CreateConversation{
		ConversationId: conv, Kind: wire.ConversationKind_CONVERSATION_KIND_DIRECT, GroupInfo: gi}}}, 20*time.Second); err != nil || r.GetError() != nil {
		t.Fatalf("create: %v %v", r, err)
	}
	var kps []*mls.KeyPackage
	for _, d := range []*e2eDevice{bob, carol} {
		kp, _, err := mls.NewKeyPackage(s1, rand.Reader, d.signer, mls.BasicCredential(d.addr()), mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	add, err := g.Commit(mls.CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	all := map[uint64]string{}
	var allMu sync.Mutex
	all[alice.submit(&wire.Send{ConversationId: conv, MessageId: "add", Kind: wire.MessageKind_MESSAGE_KIND_COMMIT, Payload: add.Commit,
		Welcome: add.Welcome, GroupInfo: add.GroupInfo, AddDevices: []string{bob.addr(), carol.addr()}})] = "add"

	const perSender = 12
	var wg sync.WaitGroup
	progress := make(chan struct{}, 3*perSender)
	for _, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perSender {
				id := fmt.Sprintf("%s-%d", strings.Split(d.user, "@")[0], k)
				if seq := d.send(conv, id, wire.MessageKind_MESSAGE_KIND_APPLICATION, 1, nil); seq != 0 {
					allMu.Lock()
					all[seq] = id
					allMu.Unlock()
				}
				progress <- struct{}{}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	waitProgress := func(n int) {
		for range n {
			select {
			case <-progress:
			case <-time.After(2 * time.Minute):
				t.Fatal("senders stalled")
			}
		}
	}
	waitProgress(6)
	before := setbacks(devices)
	b.srv.stop(t, syscall.SIGKILL) // a follower dies mid-traffic
	awaitSetback(t, devices, before, "b killed")
	b.start(t)
	waitProgress(6)
	before = setbacks(devices)
	a.srv.stop(t, syscall.SIGKILL) // the hub dies mid-traffic
	awaitSetback(t, devices, before, "a killed")
	a.start(t)
	wg.Wait()

	// c away for several backoff steps while the hub keeps sending.
	c.srv.stop(t, syscall.SIGTERM)
	for k := range 4 {
		id := fmt.Sprint("while-c-down-", k)
		all[alice.send(conv, id, wire.MessageKind_MESSAGE_KIND_APPLICATION, 1, nil)] = id
	}
	testutil.WaitFor(t, time.Minute, func() error {
		if pc := a.peer(t, c.domain); pc.Attempts < 3 || pc.QueueDepth < 4 {
			return fmt.Errorf("a has not backed off for c (3 failed attempts, 4 queued): %+v", pc)
		}
		return nil
	})
	c.start(t)

	if len(all) != 1+3*perSender+4 {
		t.Fatalf("%d messages accepted, want %d", len(all), 1+3*perSender+4)
	}
	for _, d := range devices {
		want := map[uint64]string{}
		for seq, id := range all {
			// Nobody gets their own messages; the commit that adds bob
			// and carol reaches them as its welcome.
			if id != "add" && !strings.HasPrefix(id, strings.Split(d.user, "@")[0]+"-") && !(d == alice && strings.HasPrefix(id, "while-c-down")) {
				want[seq] = id
			}
		}
		d.await(t, want)
		d.mu.Lock()
		for seq, id := range want {
			if d.ids[seq] != id {
				t.Errorf("%s: seq %d is %q, want %q", d.addr(), seq, d.ids[seq], id)
			}
		}
		if len(d.ids) != len(want) {
			t.Errorf("%s holds %d messages, want %d", d.addr(), len(d.ids), len(want))
		}
		// Mailbox order is the hub's order.
		var mbox []uint64
		for m := range d.byMbox {
			mbox = append(mbox, m)
		}
		sort.Slice(mbox, func(i, j int) bool { return mbox[i] < mbox[j] })
		for i := 1; i < len(mbox); i++ {
			if d.byMbox[mbox[i]] <= d.byMbox[mbox[i-1]] {
				t.Errorf("%s: conversation seq %d after %d", d.addr(), d.byMbox[mbox[i]], d.byMbox[mbox[i-1]])
			}
		}
		d.mu.Unlock()
	}
	for seq := uint64(1); seq <= uint64(len(all)); seq++ {
		if all[seq] == "" {
			t.Fatalf("the hub's order has a hole at %d", seq)
		}
	}
	if bob.welcome == 0 || carol.welcome == 0 {
		t.Errorf("welcomes: bob %d, carol %d", bob.welcome, carol.welcome)
	}
	for _, x := range servers {
		x.srv.stop(t, syscall.SIGTERM)
	}
}

// TestFederationAdminCLI: policy commands and their errors.
func TestFederationAdminCLI(t *testing.T) {
	skipShort(t)
	a := newFedServer(t, "a.example")
	if out := a.admin(t, "", "federation", "deny", "evil.example"); out != "evil.example denied\n" {
		t.Fatalf("deny printed %q", out)
	}
	if out := a.admin(t, "", "federation", "allow", "b.example"); out != "b.example allowed\n" {
		t.Fatalf("allow printed %q", out)
	}
	if out := a.admin(t, "", "federation", "mode", "allowlist"); out != "federation mode allowlist\n" {
		t.Fatalf("mode printed %q", out)
	}
	info := a.federation(t)
	if info.Mode != "allowlist" || strings.Join(info.Allow, ",") != "b.example" || strings.Join(info.Deny, ",") != "evil.example" || len(info.Peers) != 0 {
		t.Fatalf("federation list --json: %+v", info)
	}
	if r := hearth(t, nil, "", "admin", "--dir", a.dir, "federation", "mode", "sometimes"); r.code == 0 || !strings.Contains(r.stderr, "open, allowlist or denylist") {
		t.Fatalf("bad mode: exit %d %s", r.code, r.stderr)
	}
	if r := hearth(t, nil, "", "admin", "--dir", a.dir, "federation", "peer", "add", "b.example", "--address", "127.0.0.1:1"); r.code == 0 {
		t.Fatalf("peer add to nowhere succeeded: %s", r.stdout)
	}
	// The policy survives a restart.
	a.srv.stop(t, syscall.SIGTERM)
	a.start(t)
	if info := a.federation(t); info.Mode != "allowlist" || len(info.Deny) != 1 {
		t.Fatalf("after restart: %+v", info)
	}
}
