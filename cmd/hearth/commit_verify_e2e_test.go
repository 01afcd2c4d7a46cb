package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/certs"
	"hearth/homeserver/wire"
	"hearth/keys/mls"
	"hearth/keys/mls/suite"
	"hearth/keys/serverkey"
	"hearth/keys/testutil"
)

// hubState is what a forged commit must not change at the hub: row counts
// of the conversation tables, and the conversation's epoch, roster and
// public MLS state.
type hubState struct {
	Rows    map[string]int
	Epoch   uint64
	Members string
	State   string // sha256 of the stored public state
}

func (f *fedServer) hubState(t *testing.T, conv string) hubState {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, databaseFile)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := hubState{Rows: map[string]int{}}
	for _, tbl := range []string{"conversation_log", "conversations", "conversation_members", "conv_public_state", "mailbox"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + tbl).Scan(&n); err != nil {
			t.Fatalf("count %s in %s: %v", tbl, f.domain, err)
		}
		s.Rows[tbl] = n
	}
	if err := db.QueryRow(`SELECT epoch FROM conversations WHERE id = ?`, conv).Scan(&s.Epoch); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT group_concat(address, ',') FROM (SELECT address FROM conversation_members WHERE conv_id = ? ORDER BY address)`, conv).Scan(&s.Members); err != nil {
		t.Fatal(err)
	}
	var state []byte
	if err := db.QueryRow(`SELECT state FROM conv_public_state WHERE conv_id = ?`, conv).Scan(&state); err != nil {
		t.Fatalf("public state of %s: %v", conv, err)
	}
	s.State = fmt.Sprintf("%d bytes %x", len(state), sha256.Sum256(state))
	return s
}

// oneValue reads one value from f's database.
func (f *fedServer) oneValue(t *testing.T, q string, dest any) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(f.dir, databaseFile)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(q).Scan(dest); err != nil {
		t.Fatalf("%s in %s: %v", q, f.domain, err)
	}
}

// TestFederationForgedCommitE2E is issue 17 case 5 across real
// processes: alice@a.example and bob@b.example talk in a 1:1 hubbed at
// a; then b's server (its real signing key) sends a SUBMIT of kind COMMIT
// as bob's device whose payload is not MLS and whose add_devices names a
// device of a third server, and one carrying a real MLS commit signed by
// another key. The hub refuses both: its conversation rows, epoch, roster
// and public state do not change, and alice and bob keep talking.
func TestFederationForgedCommitE2E(t *testing.T) {
	skipShort(t)
	a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
	pinPair(t, a, b)
	mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
	const aliceAt, bobAt = "alice@a.example", "bob@b.example"
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must(t, password("alice"), "login", aliceAt, "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
	bob.must(t, password("bob"), "login", bobAt, "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")
	alice.must(t, "", "send", bobAt, "hello bob")
	recvUntil(t, bob, aliceAt, "hello bob")
	bob.must(t, "", "send", aliceAt, "hello alice")
	recvUntil(t, alice, bobAt, "hello alice")

	var conv, bobDev string
	a.oneValue(t, `SELECT id FROM conversations`, &conv)
	a.oneValue(t, `SELECT address FROM conversation_members WHERE address LIKE 'bob@%'`, &bobDev)
	before := a.hubState(t, conv)
	if before.Epoch == 0 || !strings.Contains(before.Members, bobDev) {
		t.Fatalf("the conversation at a: %+v", before)
	}

	bKey, err := serverkey.ReadFile(filepath.Join(b.dir, fedKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(a.dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	cl := &federation.Client{Peers: onePeer{federation.Peer{Domain: a.domain, Address: a.listen, CAPEM: caPEM}}, Timeout: 10 * time.Second}
	defer cl.Close()

	// A real MLS commit for this group and epoch, signed by a key that is
	// not bob's leaf's (the forger's own group of the same id).
	s1, _ := suite.Lookup(1)
	forger, _ := s1.GenerateSignatureKey(rand.Reader)
	fg, err := mls.NewGroup(mls.Config{Validator: mls.AcceptAll{}}, s1, []byte(conv), forger, mls.BasicCredential(bobDev), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evil, _ := s1.GenerateSignatureKey(rand.Reader)
	kp, _, err := mls.NewKeyPackage(s1, rand.Reader, evil, mls.BasicCredential("mallory@c.example/EVIL"), mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fout, err := fg.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
	if err != nil {
		t.Fatal(err)
	}
	forgeries := []struct {
		name                string
		payload, wel, gInfo []byte
	}{
		{"not MLS", []byte("not mls at all"), []byte("welcome"), []byte("group info")},
		{"signed by another key", fout.Commit, fout.Welcome, fout.GroupInfo},
	}
	for i, fc := range forgeries {
		var seen int
		a.oneValue(t, `SELECT COUNT(*) FROM fed_env_in`, &seen)
		now := time.Now()
		env := &fedwire.Envelope{Id: fmt.Sprint("forged-", i), Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT, ConversationId: conv,
			Sender: bobDev, MessageId: fmt.Sprint("forged-commit-", i), MessageKind: uint32(wire.MessageKind_MESSAGE_KIND_COMMIT),
			Epoch: before.Epoch, Payload: fc.payload, AddDevices: []string{"mallory@c.example/EVIL"}, Welcome: fc.wel, GroupInfo: fc.gInfo,
			ServerTimeMs: now.UnixMilli()}
		st, err := federation.SignTransaction(bKey, &fedwire.Transaction{Origin: b.domain, Destination: a.domain,
			TxnId: fmt.Sprint("forged-txn-", i), OriginTimeMs: now.UnixMilli(), Envelopes: []*fedwire.Envelope{env}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(context.Background(), a.domain, st)
		if err != nil || res.Code != fedwire.Code_CODE_OK {
			t.Fatalf("%s: post to a: %v %v", fc.name, res, err)
		}
		// The envelope was applied (seen), and refused: nothing changed.
		testutil.WaitFor(t, 10*time.Second, func() error {
			var n int
			a.oneValue(t, `SELECT COUNT(*) FROM fed_env_in`, &n)
			if n <= seen {
				return fmt.Errorf("the forged SUBMIT is not applied yet")
			}
			return nil
		})
		if after := a.hubState(t, conv); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s: the hub changed: %+v -> %+v", fc.name, before, after)
		}
	}

	// Both real members keep talking.
	alice.must(t, "", "send", bobAt, "still here?")
	recvUntil(t, bob, aliceAt, "still here?")
	bob.must(t, "", "send", aliceAt, "yes")
	recvUntil(t, alice, bobAt, "yes")
	a.srv.stop(t, os.Interrupt)
	b.srv.stop(t, os.Interrupt)
}
