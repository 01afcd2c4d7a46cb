package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/keys/testutil"
)

// pinPair pins a and b to each other with the admin CLI.
func pinPair(t *testing.T, a, b *fedServer) {
	t.Helper()
	a.admin(t, "", "federation", "peer", "add", b.domain, "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
	b.admin(t, "", "federation", "peer", "add", a.domain, "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
}

// dbRows counts the rows of the tables inbound federation writes to, in
// f's hearth.db opened read-only beside the running server.
func (f *fedServer) dbRows(t *testing.T) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, databaseFile)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	for _, tbl := range []string{"fed_txn_in", "fed_env_in", "conversation_log", "conversations", "mailbox", "fed_remote_lists"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + tbl).Scan(&n); err != nil {
			t.Fatalf("count %s in %s: %v", tbl, f.domain, err)
		}
		out[tbl] = n
	}
	return out
}

// onePeer routes every destination to one server process.
type onePeer struct{ p federation.Peer }

func (o onePeer) Peer(context.Context, string) (federation.Peer, error) { return o.p, nil }

var _ federation.PeerSource = onePeer{}

// awaitLog waits until the server's log, after its first skip bytes,
// holds a line with every one of want.
func awaitLog(t *testing.T, s *server, skip int, want ...string) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() error {
		log := s.log()[skip:]
		for _, line := range strings.Split(log, "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return nil
			}
		}
		return fmt.Errorf("no log line with %q in:\n%s", want, log)
	})
}

// TestFederationSecurityE2E: two `hearth serve` processes a.example and
// b.example pinned both ways, and evil.example denied at b. The test
// posts transactions to b's federation endpoint over HTTP/3 as rogue
// senders: a bad signature under a's key id, a wrong destination, an
// unknown key, a clock-skewed one, a replayed transaction id with other
// bytes, and one from the denied domain. Each is refused with its code,
// logged by b with origin and code and without the payload, and b's
// database rows do not change; the valid control transaction (signed
// with a's real key from its data folder) is stored.
func TestFederationSecurityE2E(t *testing.T) {
	skipShort(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	if out := b.admin(t, "", "federation", "deny", "evil.example"); out != "evil.example denied\n" {
		t.Fatalf("deny printed %q", out)
	}
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	ok, e := b.srv.login(t, "bob", strings.TrimSpace(password("bob")), false)
	if ok == nil {
		t.Fatalf("bob login: %v", e)
	}
	bobDev := "bob@b.example/" + ok.DeviceId

	aKey, err := serverkey.ReadFile(filepath.Join(a.dir, fedKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.federation(t).KeyID; got != string(aKey.ID()) {
		t.Fatalf("a signs with %s, its federation.key is %s", got, aKey.ID())
	}
	stranger, _ := serverkey.Generate(rand.Reader)
	caPEM, err := os.ReadFile(filepath.Join(b.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	cl := &federation.Client{Peers: onePeer{federation.Peer{Domain: b.domain, Address: b.listen, CAPEM: caPEM}}, Timeout: 10 * time.Second}
	defer cl.Close()

	const secret = "PAYLOAD-THAT-MUST-NOT-BE-LOGGED"
	now := time.Now()
	deliver := func(id string, seq uint64) *fedwire.Envelope {
		return &fedwire.Envelope{Id: id, Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, ConversationId: "sec@a.example",
			Sender: "alice@a.example/DEV", MessageId: "m-" + id, MessageKind: uint32(wire.MessageKind_MESSAGE_KIND_APPLICATION),
			Payload: []byte(secret), ConversationSeq: seq, PrevConversationSeq: seq - 1, Recipients: []string{bobDev}, ServerTimeMs: now.UnixMilli()}
	}
	sign := func(k *serverkey.Key, origin, dest, id string, at time.Time, env *fedwire.Envelope) *fedwire.SignedTransaction {
		st, err := federation.SignTransaction(k, &fedwire.Transaction{Origin: origin, Destination: dest, TxnId: id,
			OriginTimeMs: at.UnixMilli(), Envelopes: []*fedwire.Envelope{env}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	post := func(st *fedwire.SignedTransaction) *fedwire.TransactionResult {
		t.Helper()
		res, err := cl.Send(context.Background(), b.domain, st)
		if err != nil {
			t.Fatalf("post to b: %v", err)
		}
		return res
	}

	badSig := sign(stranger, "a.example", "b.example", "t1", now, deliver("e1", 1))
	badSig.KeyId = string(aKey.ID()) // a's key id, another key's signature
	cases := []struct {
		name, origin string
		st           *fedwire.SignedTransaction
		want         fedwire.Code
		logs         string // in the refusal's err
	}{
		{"bad signature", "a.example", badSig, fedwire.Code_CODE_BAD_SIGNATURE, serverkey.ErrSignature.Error()},
		{"wrong destination", "a.example", sign(aKey, "a.example", "c.example", "t2", now, deliver("e2", 1)), fedwire.Code_CODE_WRONG_DESTINATION, `addressed to \"c.example\"`},
		{"unknown key", "a.example", sign(stranger, "a.example", "b.example", "t3", now, deliver("e3", 1)), fedwire.Code_CODE_BAD_SIGNATURE, serverkey.ErrUnknown.Error()},
		{"clock skew", "a.example", sign(aKey, "a.example", "b.example", "t4", now.Add(-time.Hour), deliver("e4", 1)), fedwire.Code_CODE_CLOCK_SKEW, "outside"},
		{"denied domain", "evil.example", sign(stranger, "evil.example", "b.example", "t5", now, deliver("e5", 1)), fedwire.Code_CODE_FORBIDDEN, "not allowed"},
	}
	before := b.dbRows(t)
	for _, tc := range cases {
		skip := len(b.srv.log())
		if res := post(tc.st); res.Code != tc.want {
			t.Fatalf("%s: got %v %q, want %v", tc.name, res.Code, res.Message, tc.want)
		}
		awaitLog(t, b.srv, skip, "federation: refused", "origin="+tc.origin, "code="+tc.want.String(), tc.logs)
		if got := b.dbRows(t); !reflect.DeepEqual(got, before) {
			t.Fatalf("%s: b stored something: %v -> %v", tc.name, before, got)
		}
	}

	// The control: a valid transaction from a is stored, once.
	good := sign(aKey, "a.example", "b.example", "t6", now, deliver("e6", 1))
	for range 2 {
		if res := post(good); res.Code != fedwire.Code_CODE_OK || len(res.Results) != 1 || res.Results[0].Code != fedwire.Code_CODE_OK {
			t.Fatalf("valid transaction: %v", res)
		}
	}
	applied := b.dbRows(t)
	if applied["mailbox"] != before["mailbox"]+1 || applied["fed_txn_in"] != before["fed_txn_in"]+1 || applied["fed_env_in"] != before["fed_env_in"]+1 {
		t.Fatalf("valid transaction not stored once: %v -> %v", before, applied)
	}
	// Its id again with other bytes is a replay.
	skip := len(b.srv.log())
	if res := post(sign(aKey, "a.example", "b.example", "t6", now, deliver("e7", 2))); res.Code != fedwire.Code_CODE_REPLAY {
		t.Fatalf("replay: %v", res)
	}
	awaitLog(t, b.srv, skip, "federation: refused", "origin=a.example", "code="+fedwire.Code_CODE_REPLAY.String())
	if got := b.dbRows(t); !reflect.DeepEqual(got, applied) {
		t.Fatalf("replay stored something: %v -> %v", applied, got)
	}
	if strings.Contains(b.srv.log(), secret) {
		t.Errorf("b logged a payload:\n%s", b.srv.log())
	}
	a.srv.stop(t, os.Interrupt)
	b.srv.stop(t, os.Interrupt)
}

// linkFedDevice logs p in as a pending device of user with loginArgs and
// approves it from approver by the link code it prints.
func linkFedDevice(t *testing.T, p, approver *profile, loginArgs ...string) {
	t.Helper()
	_, err := linkProfile(p, 60*time.Second, func(code string) error {
		if out := approver.must(t, "", "device", "approve", code); !strings.Contains(out, "approved: ") {
			t.Errorf("approve output %q", out)
		}
		return nil
	}, loginArgs...)
	if err != nil {
		t.Fatal(err)
	}
}

// recvUntil runs `recv --json` on p until a message from:text arrives
// (federation delivers asynchronously) and returns everything received.
func recvUntil(t *testing.T, p *profile, from, text string) []chatMsg {
	t.Helper()
	var all []chatMsg
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); {
		all = append(all, parseMsgs(t, p.must(t, "", "recv", "--json", "--timeout", "1500ms"))...)
		n := 0
		for _, m := range all {
			if m.From == from && m.Text == text {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("%s received %s:%s %d times: %v", p.dir, from, text, n, texts(all))
		}
		if n == 1 {
			return all
		}
	}
	t.Fatalf("%s never received %s:%s; got %v", p.dir, from, text, texts(all))
	return nil
}

// TestFederationRemoteNewDeviceE2E: alice@a.example and bob@b.example on
// their own `hearth serve` processes talk with `hearth chat` (hubbed at
// a); bob then links a new device, approved from his first one with
// `hearth chat device approve`; alice's next message reaches both of
// bob's devices, and the new device can answer through the hub.
func TestFederationRemoteNewDeviceE2E(t *testing.T) {
	parallelE2E(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	bobLogin := []string{"login", bobAt, "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin"}
	alice, bob, bob2 := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", aliceAt, "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), bobLogin...)

	alice.must(t, "", "send", bobAt, "before the new device")
	recvUntil(t, bob, aliceAt, "before the new device")

	linkFedDevice(t, bob2, bob, bobLogin...)
	if devs := devices(t, bob2); len(devs) != 2 {
		t.Fatalf("bob's devices: %+v", devs)
	}
	// The new device does nothing more before alice sends: its activation
	// published its KeyPackages, and its list reached a through federation.

	alice.must(t, "", "send", bobAt, "after the new device")
	for _, p := range []*profile{bob2, bob} {
		for _, m := range recvUntil(t, p, aliceAt, "after the new device") {
			if m.Text == "after the new device" && !strings.HasSuffix(m.Conversation, "@a.example") {
				t.Errorf("conversation %q is not hubbed at a", m.Conversation)
			}
		}
	}
	bob2.must(t, "", "send", aliceAt, "from the new device")
	recvUntil(t, alice, bobAt, "from the new device")
	a.srv.stop(t, os.Interrupt)
	b.srv.stop(t, os.Interrupt)
}
