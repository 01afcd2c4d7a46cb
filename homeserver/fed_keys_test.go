package homeserver

import (
	"bytes"
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

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

// TestFederationKeyRotation: after a rotates its signing key, traffic
// a<->b goes on with no admin action on b (b re-fetches a's key document
// from the pinned address when it sees the new key id); the retired key
// is accepted during the grace and refused once it ended, even for a
// transaction dated within it; the rotation survives a restart, with the
// private key in federation.key (0600) and none in the database;
// refreshes are rate-limited.
func TestFederationKeyRotation(t *testing.T) {
	ctx := context.Background()
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	alice.must(syncFrame(0))
	bob.must(syncFrame(0))
	const conv = "rot@a.example"
	createFedConv(alice, conv)
	alice.must(addCommit(conv, "add", 0, bob.addr()))
	collect(t, bob, 1, fedWait)

	old := a.skey
	const grace = 3 * time.Second
	rot, err := a.s.FederationKeyRotate(ctx, grace)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Retired != string(old.ID()) || rot.Current == rot.Retired {
		t.Fatalf("rotation: %+v (old key %s)", rot, old.ID())
	}
	if _, err := a.s.FederationKeyRotate(ctx, -time.Second); wire.KindOf(err) != wire.Code_CODE_BAD_REQUEST {
		t.Fatalf("negative grace: %v", err)
	}
	checkDoc := func() {
		t.Helper()
		doc, err := federation.FetchKeyDocument(ctx, federation.Peer{Domain: a.domain, Address: a.addr, CAPEM: a.caPEM})
		if err != nil {
			t.Fatal(err)
		}
		_, set, err := federation.ParseKeyDocument(doc, a.domain)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, k := range set.Keys() {
			got[string(k.ID)] = k.ValidUntil.UnixMilli()
			if k.ID == serverkey.ID(rot.Current) {
				// The current key's window: KeyValidity (1m) from when the document was served.
				if w := time.Until(k.ValidUntil); w <= 0 || w > time.Minute {
					t.Fatalf("current key published valid for %s", w)
				}
				got[string(k.ID)] = 0
			}
		}
		want := map[string]int64{rot.Retired: rot.RetiredUntilMs, rot.Current: 0}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("key document lists %v, want %v", got, want)
		}
	}
	checkDoc()
	// b still holds a's key document from before the rotation: the old
	// key is accepted within the grace.
	cl := &federation.Client{Peers: fixedPeer{b}}
	defer cl.Close()
	post := func(k *serverkey.Key, id string, at time.Time) *fedwire.TransactionResult {
		t.Helper()
		st, err := federation.SignTransaction(k, &fedwire.Transaction{Origin: a.domain, Destination: b.domain, TxnId: id, OriginTimeMs: at.UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(ctx, b.domain, st)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := post(old, "old-in-time", time.Now()); res.Code != fedwire.Code_CODE_OK {
		t.Fatalf("old key within the grace: %v %s", res.Code, res.Message)
	}
	checkKeyFiles(t, a, rot.Current)

	// Traffic both ways goes on; b learned the new key by itself.
	alice.must(appMsg(conv, "after-rotation", 1, "signed by the new key"))
	if d := collect(t, bob, 1, fedWait)[0]; d.ConversationSeq != 2 || string(d.Payload) != "signed by the new key" {
		t.Fatalf("bob got %v", d)
	}
	if !strings.Contains(b.logs.String(), "refreshed peer keys") {
		t.Fatal("b did not log a key refresh")
	}
	sendRetry(t, bob, appMsg(conv, "bob-after", 1, "reply"), fedWait)
	if d := collect(t, alice, 1, fedWait)[0]; d.ConversationSeq != 3 {
		t.Fatalf("alice got %v", d)
	}

	// Old-key transactions after the grace: refused.
	end := time.UnixMilli(rot.RetiredUntilMs)
	time.Sleep(time.Until(end.Add(50 * time.Millisecond)))
	before := b.rows(t)
	for _, at := range []time.Time{time.Now(), end.Add(-time.Millisecond)} { // now, and dated within the grace
		res := post(old, fmt.Sprintf("old-expired-%d", at.UnixMilli()), at)
		if res.Code != fedwire.Code_CODE_BAD_SIGNATURE || !strings.Contains(res.Message, "not valid") {
			t.Fatalf("old key after its grace (dated %s): %v %s", at.Sub(end), res.Code, res.Message)
		}
	}
	if got := b.rows(t); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused transaction stored something: %v -> %v", before, got)
	}
	var res *fedwire.TransactionResult
	// An unknown key: one refresh (after the short gap) does not find it;
	// the same key id again is refused without another fetch.
	stranger, _ := serverkey.Generate(rand.Reader)
	time.Sleep(1100 * time.Millisecond) // KeyRefreshGap
	res = post(stranger, "stranger", time.Now())
	if res.Code != fedwire.Code_CODE_BAD_SIGNATURE {
		t.Fatalf("unknown key: %v %s", res.Code, res.Message)
	}
	refreshes := strings.Count(b.logs.String(), "refreshed peer keys")
	res = post(stranger, "stranger2", time.Now())
	if res.Code != fedwire.Code_CODE_BAD_SIGNATURE || !strings.Contains(res.Message, "refreshed") {
		t.Fatalf("unknown key within the refresh interval: %v %s", res.Code, res.Message)
	}
	if n := strings.Count(b.logs.String(), "refreshed peer keys"); n != refreshes {
		t.Fatalf("a key id not found by a refresh caused another fetch (%d -> %d)", refreshes, n)
	}

	// The rotation is durable: after a restart a signs with the new key.
	a.restart()
	checkDoc()
	checkKeyFiles(t, a, rot.Current)
	if info, err := a.s.FederationList(ctx); err != nil || info.KeyID != rot.Current {
		t.Fatalf("after restart key %q, want %q (%v)", info.KeyID, rot.Current, err)
	}
	alice = a.resume(alice, 1)
	sendRetry(t, alice, appMsg(conv, "after-restart", 1, "still new key"), fedWait)
	if d := collect(t, bob, 1, fedWait)[0]; d.ConversationSeq != 4 {
		t.Fatalf("bob after a's restart got %v", d)
	}
}

// TestFederationForgedKeyIDDoesNotDelayRefresh: a forged transaction "from
// a" under an unknown key id makes b refresh a's keys once; it does not
// hold back the refresh a's real new key needs right after: a's first
// transaction under its new key is admitted at once or, within the short
// refresh gap, refused as temporary (the sender retries) and admitted a
// moment later — not refused as a bad signature for the 30 s interval.
// The forged key id again is refused without another fetch.
func TestFederationForgedKeyIDDoesNotDelayRefresh(t *testing.T) {
	ctx := context.Background()
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	cl := &federation.Client{Peers: fixedPeer{b}}
	defer cl.Close()
	post := func(k *serverkey.Key, id string) *fedwire.TransactionResult {
		t.Helper()
		st, err := federation.SignTransaction(k, &fedwire.Transaction{Origin: a.domain, Destination: b.domain, TxnId: id, OriginTimeMs: time.Now().UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(ctx, b.domain, st)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	forger, _ := serverkey.Generate(rand.Reader)
	if res := post(forger, "forged"); res.Code != fedwire.Code_CODE_BAD_SIGNATURE {
		t.Fatalf("forged: %v %s", res.Code, res.Message)
	}
	fetches := strings.Count(b.logs.String(), "refreshed peer keys")
	if _, err := a.s.FederationKeyRotate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; ; i++ {
		res := post(a.s.fed.Peers.SigningKey(), fmt.Sprintf("real-%d", i))
		if res.Code == fedwire.Code_CODE_OK {
			break
		}
		if res.Code != fedwire.Code_CODE_UNAVAILABLE || time.Since(start) > 5*time.Second {
			t.Fatalf("a's new key after a forged key id: %v %s (after %s)", res.Code, res.Message, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	n := strings.Count(b.logs.String(), "refreshed peer keys")
	if res := post(forger, "forged-again"); res.Code != fedwire.Code_CODE_BAD_SIGNATURE {
		t.Fatalf("forged again: %v %s", res.Code, res.Message)
	}
	if m := strings.Count(b.logs.String(), "refreshed peer keys"); m != n || n != fetches+1 {
		t.Fatalf("refreshes: %d after the forgery, %d after the real key, %d after the forgery again", fetches, n, m)
	}
}

// checkKeyFiles: n's federation.key is mode 0600 and holds the key
// current, and n's database holds no private key seed.
func checkKeyFiles(t *testing.T, n *fedNode, current string) {
	t.Helper()
	path := filepath.Join(n.dir, "federation.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("federation.key mode %v", st.Mode().Perm())
	}
	k, err := serverkey.ReadFile(path)
	if err != nil || k == nil || string(k.ID()) != current {
		t.Fatalf("federation.key holds %v (%v), want %s", k, err, current)
	}
	for _, f := range []string{"hearth.db", "hearth.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(n.dir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, k.PrivateKey().Seed()) {
			t.Fatalf("%s holds the private key", f)
		}
	}
}

// TestFederationRotationReachesPeers: b pinned a's key document before a
// rotated with no grace and hears nothing signed by a's new key. The old
// key was published with a validity window (KeyValidity, 1s here), so b
// stops accepting it once that window ends: b fetches a's document again
// and finds the key retired. Before windows, b kept accepting it until it
// happened to meet the new key id.
func TestFederationRotationReachesPeers(t *testing.T) {
	ctx := context.Background()
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	a.stop()
	a.cfg.Federation.KeyValidity = time.Second
	a.start()
	pinAll(t, a, b)
	old := a.skey
	cl := &federation.Client{Peers: fixedPeer{b}}
	defer cl.Close()
	post := func(id string) *fedwire.TransactionResult {
		t.Helper()
		st, err := federation.SignTransaction(old, &fedwire.Transaction{Origin: a.domain, Destination: b.domain, TxnId: id, OriginTimeMs: time.Now().UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Send(ctx, b.domain, st)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := post("before"); res.Code != fedwire.Code_CODE_OK {
		t.Fatalf("before the rotation: %v %s", res.Code, res.Message)
	}
	rot, err := a.s.FederationKeyRotate(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // the window b was given for the old key ends
	res := post("after")
	if res.Code != fedwire.Code_CODE_BAD_SIGNATURE || !strings.Contains(res.Message, "not valid") {
		t.Fatalf("retired key after the window: %v %s", res.Code, res.Message)
	}
	// Refused again at once, without another fetch.
	n := strings.Count(b.logs.String(), "refreshed peer keys")
	time.Sleep(1100 * time.Millisecond) // past KeyRefreshGap
	if res := post("again"); res.Code != fedwire.Code_CODE_BAD_SIGNATURE {
		t.Fatalf("retired key again: %v %s", res.Code, res.Message)
	}
	if m := strings.Count(b.logs.String(), "refreshed peer keys"); m != n {
		t.Fatalf("the retired key id caused another fetch (%d -> %d)", n, m)
	}
	// The new key is accepted (its window renews with each fetch).
	st, err := federation.SignTransaction(a.s.fed.Peers.SigningKey(), &fedwire.Transaction{Origin: a.domain, Destination: b.domain, TxnId: "new", OriginTimeMs: time.Now().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.s.fed.Peers.SigningKey().ID()) != rot.Current {
		t.Fatal("a does not sign with its new key")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r, err := cl.Send(ctx, b.domain, st)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code == fedwire.Code_CODE_OK {
			break
		}
		if r.Code != fedwire.Code_CODE_UNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("new key: %v %s", r.Code, r.Message)
		}
	}
}

// TestFederationKeySeedMigration: a data folder of a version that kept the
// rotated federation key's seed in hearth.db (and had no federation.key)
// starts with that key, now read from federation.key (0600), and the seed
// is gone from the database files.
func TestFederationKeySeedMigration(t *testing.T) {
	a := newFedNode(t, "a.example")
	a.stop()
	if err := os.Remove(filepath.Join(a.dir, "federation.key")); err != nil {
		t.Fatal(err)
	}
	legacy, _ := serverkey.Generate(rand.Reader)
	raw, err := sql.Open("sqlite3-hearth", filepath.Join(a.dir, "hearth.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES (?, ?, NULL, 0, ?)`,
			[]any{string(a.skey.ID()), []byte(a.skey.Public()), time.Now().Add(-time.Hour).UnixMilli()}},
		{`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES (?, ?, ?, ?, 0)`,
			[]any{string(legacy.ID()), []byte(legacy.Public()), legacy.PrivateKey().Seed(), time.Now().Add(-2 * time.Hour).UnixMilli()}},
	} {
		if _, err := raw.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	a.start()
	if got := a.s.fed.Peers.SigningKey().ID(); got != legacy.ID() {
		t.Fatalf("signs with %s, want the stored key %s", got, legacy.ID())
	}
	checkKeyFiles(t, a, string(legacy.ID()))
	a.restart()
	if got := a.s.fed.Peers.SigningKey().ID(); got != legacy.ID() {
		t.Fatalf("after a restart signs with %s, want %s", got, legacy.ID())
	}
}

// TestFederationKeyRotationInterrupted: a rotation that stopped after
// writing federation.key.next is finished at the next start when the
// database committed it (the new key signs, the file is renamed), and
// undone when it did not (the old key signs, the stray file is removed).
func TestFederationKeyRotationInterrupted(t *testing.T) {
	a := newFedNode(t, "a.example")
	next := filepath.Join(a.dir, "federation.key.next")
	writeNext := func() *serverkey.Key {
		t.Helper()
		k, _ := serverkey.Generate(rand.Reader)
		if err := serverkey.WriteKeyFile(next, k.MarshalPEM()); err != nil {
			t.Fatal(err)
		}
		return k
	}
	// Not committed: the database still names the old key.
	a.stop()
	writeNext()
	a.start()
	if got := a.s.fed.Peers.SigningKey().ID(); got != a.skey.ID() {
		t.Fatalf("uncommitted rotation: signs with %s, want %s", got, a.skey.ID())
	}
	if _, err := os.Stat(next); !os.IsNotExist(err) {
		t.Fatalf("stray federation.key.next kept: %v", err)
	}
	// Committed: the database names the new key, the rename did not happen.
	a.stop()
	nk := writeNext()
	db, err := storage.Open(filepath.Join(a.dir, "hearth.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	err = db.Write(context.Background(), func(tx *storage.Tx) error {
		return tx.RotateFedServerKey(&storage.FedServerKey{ID: string(a.skey.ID()), Public: a.skey.Public()},
			&storage.FedServerKey{ID: string(nk.ID()), Public: nk.Public(), ValidFromMs: now}, now)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	a.start()
	if got := a.s.fed.Peers.SigningKey().ID(); got != nk.ID() {
		t.Fatalf("committed rotation: signs with %s, want %s", got, nk.ID())
	}
	checkKeyFiles(t, a, string(nk.ID()))
	if _, err := os.Stat(next); !os.IsNotExist(err) {
		t.Fatalf("federation.key.next kept after finishing: %v", err)
	}
}
