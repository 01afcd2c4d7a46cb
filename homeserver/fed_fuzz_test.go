package homeserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"hearth/federation"
	"hearth/federation/fedwire"
	"hearth/homeserver/wire"
	"hearth/storage"
)

// FuzzFederationApply: arbitrary transactions from a pinned peer, signed
// with its real key, go through a real homeserver's federation handler
// (headers, verification, limits) to envelope application on a real
// database. Nothing panics, every envelope gets a result, and no envelope
// makes the server store anything under the name of its own users, which
// it never submitted: no conversation copy has a local creator, no log
// entry a local sender. The corpus in testdata/fuzz/FuzzFederationApply
// is replayed by go test.
func FuzzFederationApply(f *testing.F) {
	a, b := newFedNode(f, "a.example"), newFedNode(f, "b.example")
	a.stop()
	a.cfg.Federation.RatePerSecond, a.cfg.Federation.RateBurst = 1e9, 1e9 // reach application, not the limiter
	a.start()
	pinAll(f, a, b)
	_, alice := a.addUser("alice")
	now := time.Now().UnixMilli()
	seed := func(envs ...*fedwire.Envelope) {
		raw, err := proto.Marshal(&fedwire.Transaction{Envelopes: envs})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	app := uint32(wire.MessageKind_MESSAGE_KIND_APPLICATION)
	seed(&fedwire.Envelope{Id: "d1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, ConversationId: "c@b.example",
		Sender: "bob@b.example/D", MessageId: "m", MessageKind: app, Payload: []byte("p"), ConversationSeq: 1,
		Recipients: []string{alice.addr()}, ServerTimeMs: now})
	seed(&fedwire.Envelope{Id: "d2", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DELIVER, ConversationId: "forged@b.example",
		Sender: alice.addr(), MessageId: "m2", MessageKind: app, ConversationSeq: 1, Recipients: []string{alice.addr()}})
	seed(&fedwire.Envelope{Id: "s1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT, ConversationId: "c@a.example",
		Sender: "bob@b.example/D", MessageId: "m3", MessageKind: app, Payload: []byte("p")})
	seed(&fedwire.Envelope{Id: "l1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_DEVICE_LIST, Sender: "bob@b.example", DeviceListVersion: 3})
	seed(&fedwire.Envelope{Id: "p1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_PRESENCE, Sender: "bob@b.example", Presence: 1,
		LastActiveMs: now, PresenceTtlMs: 4294967295, Recipients: []string{"alice@a.example"}})
	seed(&fedwire.Envelope{Id: "r1", Kind: fedwire.EnvelopeKind_ENVELOPE_KIND_SUBMIT_RESULT, ConversationId: "c@b.example",
		Sender: alice.addr(), InReplyTo: "nope"})
	h := a.s.FederationHandler()
	var n atomic.Int64
	local := "@" + a.domain + "/"
	f.Fuzz(func(t *testing.T, in []byte) {
		txn := &fedwire.Transaction{}
		if proto.Unmarshal(in, txn) != nil || len(txn.Envelopes) > 50 {
			return
		}
		txn.Origin, txn.Destination, txn.OriginTimeMs = b.domain, a.domain, time.Now().UnixMilli()
		txn.TxnId = fmt.Sprintf("fuzz-%d", n.Add(1))
		st, err := federation.SignTransaction(b.skey, txn)
		if err != nil {
			return
		}
		body, _ := proto.Marshal(st)
		req := httptest.NewRequest(http.MethodPost, federation.PathTransaction, bytes.NewReader(body))
		req.Header.Set(federation.HeaderOrigin, b.domain)
		req.Header.Set(federation.HeaderKeyID, st.KeyId)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := &fedwire.TransactionResult{}
		if rec.Code != http.StatusOK || proto.Unmarshal(rec.Body.Bytes(), res) != nil {
			t.Fatalf("HTTP %d", rec.Code)
		}
		if res.Code == fedwire.Code_CODE_RATE_LIMITED {
			t.Fatal("rate-limited: the fuzzer does not reach application")
		}
		if res.Code == fedwire.Code_CODE_OK && len(res.Results) != len(txn.Envelopes) {
			t.Fatalf("%d results for %d envelopes", len(res.Results), len(txn.Envelopes))
		}
		err = a.db.Read(context.Background(), func(tx *storage.Tx) error {
			for _, e := range txn.Envelopes {
				c, err := tx.Conversation(e.GetConversationId())
				if err == nil && strings.Contains(c.Creator, local) {
					return fmt.Errorf("conversation %s created under local %s", c.ID, c.Creator)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
