package homeserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
)

// TestFederationKeyRotation: after a rotates its signing key, traffic
// a<->b goes on with no admin action on b (b re-fetches a's key document
// from the pinned address when it sees the new key id); the retired key
// is still accepted for what it signed while valid and refused after its
// end; the rotation survives a restart; refreshes are rate-limited.
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
	rot, err := a.s.FederationKeyRotate(ctx, 0)
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
			got[string(k.ID)] = 0
			if !k.ValidUntil.IsZero() {
				got[string(k.ID)] = k.ValidUntil.UnixMilli()
			}
		}
		want := map[string]int64{rot.Retired: rot.RetiredUntilMs, rot.Current: 0}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("key document lists %v, want %v", got, want)
		}
	}
	checkDoc()

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

	// Old-key transactions: valid before its end, refused after it.
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
	end := time.UnixMilli(rot.RetiredUntilMs)
	if res := post(old, "old-in-time", end.Add(-time.Millisecond)); res.Code != fedwire.Code_CODE_OK {
		t.Fatalf("old key within its validity: %v %s", res.Code, res.Message)
	}
	before := b.rows(t)
	res := post(old, "old-expired", end.Add(time.Second))
	if res.Code != fedwire.Code_CODE_BAD_SIGNATURE || !strings.Contains(res.Message, "not valid") {
		t.Fatalf("old key after its end: %v %s", res.Code, res.Message)
	}
	if got := b.rows(t); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused transaction stored something: %v -> %v", before, got)
	}
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
