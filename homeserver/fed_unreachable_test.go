package homeserver

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/keys/serverkey"
	"hearth/storage"
)

func fetchListFrame(user string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceList{FetchDeviceList: &wire.FetchDeviceList{User: user}}}
}

func fetchListsFrame(users ...string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_FetchDeviceLists{FetchDeviceLists: &wire.FetchDeviceLists{Users: users}}}
}

func claimFrame(users ...string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_ClaimKeyPackages{ClaimKeyPackages: &wire.ClaimKeyPackages{Users: users}}}
}

func downloadFrame(server string) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{DownloadMedia: &wire.DownloadMedia{
		MediaId: "media-id-0123456789abcdef", Length: 100, Server: server}}}
}

// wantErr checks that r is the error code with msg in its message.
func wantErr(t *testing.T, what string, r *wire.ServerFrame, code wire.Code, msg string) *wire.ErrorInfo {
	t.Helper()
	e := r.GetError()
	if e == nil || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("%s: got %v, want %s with %q", what, r, code, msg)
	}
	return e
}

// TestFederationNoSuchDomain: a user of a domain that cannot have a
// server is answered at once, for good (CODE_NOT_FOUND naming the
// domain): special-use names without a lookup, a name that does not exist
// (NXDOMAIN) with one lookup however often it is asked; IP literals and
// single-label names are refused (also as a media server) without a
// lookup.
func TestFederationNoSuchDomain(t *testing.T) {
	a := newFedNode(t, "a.example")
	res := newFakeResolver()
	a.stop()
	a.useDiscovery(res, nil)
	a.start()
	_, alice := a.addUser("alice")

	r := alice.call(fetchListFrame("bob@nowhere.invalid"))
	e := wantErr(t, "bob@nowhere.invalid", r, wire.Code_CODE_NOT_FOUND, "no Hearth server for nowhere.invalid")
	if e.Retryable {
		t.Fatalf("%v is retryable", e)
	}
	wantErr(t, "bob@localhost", alice.call(fetchListFrame("bob@localhost")), wire.Code_CODE_NOT_FOUND, "no Hearth server for localhost")
	if n := res.total(); n != 0 {
		t.Fatalf("%d lookups for special-use names", n)
	}

	for range 10 {
		wantErr(t, "bob@gone.example", alice.call(fetchListFrame("bob@gone.example")), wire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")
	}
	lists := alice.must(fetchListsFrame("bob@gone.example", "carol@gone.example", "dave@nowhere.invalid")).GetDeviceLists()
	if len(lists.Missing) != 3 {
		t.Fatalf("missing %v", lists.Missing)
	}
	for _, m := range lists.Missing {
		if m.Code != wire.Code_CODE_NOT_FOUND || !strings.Contains(m.Message, "no Hearth server for") {
			t.Fatalf("missing %v", m)
		}
	}
	wantErr(t, "claim", alice.call(claimFrame("bob@gone.example")), wire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")
	if n := res.count("gone.example"); n != 1 {
		t.Fatalf("%d lookups of a name that does not exist, want 1 (remembered)", n)
	}

	// A conversation hubbed where no server can be: refused, not queued.
	wantErr(t, "send to x@nowhere.invalid", alice.call(appMsg("x@nowhere.invalid", "m1", 1, "hi")), wire.Code_CODE_NOT_FOUND, "no Hearth server for nowhere.invalid")
	wantErr(t, "send to x@gone.example", alice.call(appMsg("x@gone.example", "m2", 1, "hi")), wire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")
	var depths map[string]int
	if err := a.db.Read(t.Context(), func(tx *storage.Tx) (err error) { depths, err = tx.QueueDepths(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(depths) != 0 {
		t.Fatalf("queued for servers that cannot exist: %v", depths)
	}

	wantErr(t, "media at 127.0.0.1", alice.call(downloadFrame("127.0.0.1")), wire.Code_CODE_BAD_REQUEST, "IP address")
	wantErr(t, "media at intranet", alice.call(downloadFrame("intranet")), wire.Code_CODE_BAD_REQUEST, "single-label")
	wantErr(t, "media at gone.example", alice.call(downloadFrame("gone.example")), wire.Code_CODE_NOT_FOUND, "no Hearth server for gone.example")
	if n := res.total(); n != 1 || res.dialCount() != 0 {
		t.Fatalf("%d lookups, %d dials in all, want 1 and 0", n, res.dialCount())
	}
}

// TestFederationForgedOrigin: transactions claiming an unpinned origin
// cost at most a bounded number of discovery attempts, however many
// arrive; a transaction that fails a cheap check (malformed key id)
// causes none; the remote side gets a generic refusal, the detail stays
// in the local log.
func TestFederationForgedOrigin(t *testing.T) {
	a := newFedNode(t, "a.example")
	res := newFakeResolver()
	res.set("down.example", "127.0.0.1:9") // resolves; nothing answers there
	a.stop()
	a.useDiscovery(res, nil)
	a.start()
	cl := &federation.Client{Peers: fixedPeer{a}}
	defer cl.Close()
	forger, _ := serverkey.Generate(rand.Reader)
	send := func(origin string, i int, mangle func(*fedwire.SignedTransaction)) *fedwire.TransactionResult {
		txn := &fedwire.Transaction{Origin: origin, Destination: "a.example", TxnId: "t" + string(rune('a'+i%26)) + time.Now().String(),
			OriginTimeMs: time.Now().UnixMilli()}
		st, err := federation.SignTransaction(forger, txn)
		if err != nil {
			t.Error(err)
			return nil
		}
		if mangle != nil {
			mangle(st)
		}
		r, err := cl.Send(context.Background(), "a.example", st)
		if err != nil {
			t.Error(err)
		}
		return r
	}
	for _, tc := range []struct {
		origin string
		code   fedwire.Code
		msg    string
		max    int
	}{
		{"evil.example", fedwire.Code_CODE_BAD_SIGNATURE, "unknown origin key", 1},    // NXDOMAIN: held
		{"down.example", fedwire.Code_CODE_UNAVAILABLE, "origin keys unavailable", 5}, // backoff from 1s
		{"nowhere.invalid", fedwire.Code_CODE_BAD_SIGNATURE, "unknown origin key", 0}, // never looked up
		{"10.0.0.1", fedwire.Code_CODE_BAD_SIGNATURE, "unknown origin key", 0},        // not a domain name: never looked up
	} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[fedwire.Code]int{}
		for i := range 100 {
			wg.Go(func() {
				r := send(tc.origin, i, nil)
				mu.Lock()
				defer mu.Unlock()
				codes[r.GetCode()]++
				if r.GetCode() == tc.code && (!strings.Contains(r.GetMessage(), tc.msg) || strings.Contains(r.GetMessage(), "nothing listens") || strings.Contains(r.GetMessage(), "no such host")) {
					t.Errorf("%s: remote told %q", tc.origin, r.GetMessage())
				}
			})
		}
		wg.Wait()
		if codes[tc.code] == 0 {
			t.Fatalf("%s: answers %v, want %s", tc.origin, codes, tc.code)
		}
		if n := res.count(tc.origin); n > tc.max {
			t.Fatalf("%s: 100 forged transactions made %d lookups, want at most %d", tc.origin, n, tc.max)
		}
	}
	if n := res.dialCount(); n > 5 {
		t.Fatalf("%d dials for forged origins", n)
	}

	// Cheap checks come first: a malformed key id or signature costs no lookup.
	res.set("fresh.example", "127.0.0.1:9")
	for i := range 20 {
		r := send("fresh.example", i, func(st *fedwire.SignedTransaction) {
			if i%2 == 0 {
				st.KeyId = "ed25519:nope"
			} else {
				st.Signature = st.Signature[:10]
			}
		})
		if c := r.GetCode(); c != fedwire.Code_CODE_BAD_SIGNATURE && (i%2 == 0 || c != fedwire.Code_CODE_UNAVAILABLE) {
			t.Fatalf("malformed header: %v", r)
		}
	}
	// A malformed key id is refused from the headers, before any lookup;
	// a malformed signature is seen once the body is read, after the
	// origin's keys were looked up (one lookup, then the failure is held).
	if n := res.count("fresh.example"); n > 1 {
		t.Fatalf("%d lookups for transactions that failed a cheap check", n)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "discovery failed") || !strings.Contains(logs, "down.example") {
		t.Error("the discovery failures are not in the local log")
	}
}

// TestFederationPeerDownFailsFast: with b stopped, the first query from a
// to b (alice fetching bob's device list) fails after the short timeout,
// and the next ones — device lists, KeyPackages, media — fail at once
// with CODE_UNAVAILABLE naming b, without trying b, until the backoff
// runs out; then one query tries for real. When b is back, the next
// probe succeeds and queries flow again.
func TestFederationPeerDownFailsFast(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	a.stop()
	a.cfg.Federation.Outbound.Backoff = federation.Backoff{Base: time.Minute, Max: 5 * time.Minute}
	a.start()
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	bob.must(syncFrame(0))
	alice.must(fetchListFrame("bob@b.example"))

	tries := func() int { return strings.Count(a.logs.String(), "query got no answer") }
	b.stop()
	e := wantErr(t, "first fetch", alice.call(fetchListFrame("bob@b.example")), wire.Code_CODE_UNAVAILABLE, "b.example is unreachable; retrying in")
	if !e.Retryable || e.RetryAfterMs < 30_000 {
		t.Fatalf("first fetch: %v, want retryable after the backoff (30s..60s)", e)
	}
	if n := tries(); n != 1 {
		t.Fatalf("%d real attempts, want 1", n)
	}
	for range 10 {
		wantErr(t, "fetch while down", alice.call(fetchListFrame("bob@b.example")), wire.Code_CODE_UNAVAILABLE, "b.example is unreachable; retrying in")
	}
	lists := alice.must(fetchListsFrame("bob@b.example", "carol@b.example"))
	for _, m := range lists.GetDeviceLists().GetMissing() {
		if m.Code != wire.Code_CODE_UNAVAILABLE || !strings.Contains(m.Message, "b.example is unreachable") {
			t.Fatalf("missing %v", m)
		}
	}
	wantErr(t, "claim while down", alice.call(claimFrame("bob@b.example")), wire.Code_CODE_UNAVAILABLE, "b.example is unreachable")
	wantErr(t, "media while down", alice.call(downloadFrame("b.example")), wire.Code_CODE_UNAVAILABLE, "b.example is unreachable")
	if n := tries(); n != 1 {
		t.Fatalf("%d real attempts while in backoff, want 1", n)
	}

	// The backoff (30s..60s) runs out: the next query tries b again.
	a.skew.Store(int64(61 * time.Second))
	wantErr(t, "probe", alice.call(fetchListFrame("bob@b.example")), wire.Code_CODE_UNAVAILABLE, "b.example is unreachable")
	if n := tries(); n != 2 {
		t.Fatalf("%d real attempts after the backoff, want 2", n)
	}
	wantErr(t, "after the probe", alice.call(fetchListFrame("bob@b.example")), wire.Code_CODE_UNAVAILABLE, "retrying in")
	if n := tries(); n != 2 {
		t.Fatalf("%d real attempts, want 2", n)
	}

	// b is back (same clock as a); after the second backoff (at most 2
	// minutes) the probe reaches it and queries flow again.
	b.skew.Store(int64(61*time.Second + 2*time.Minute + time.Second))
	b.start()
	a.skew.Store(b.skew.Load())
	if l := alice.must(fetchListFrame("bob@b.example")).GetDeviceList(); l.GetUser() != "bob@b.example" {
		t.Fatalf("after b came back: %v", l)
	}
	alice.must(fetchListFrame("bob@b.example"))
	if n := tries(); n != 2 {
		t.Fatalf("%d failed attempts in all, want 2", n)
	}
}
