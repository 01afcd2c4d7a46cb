package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"hearth/client/convstate"
	"hearth/client/store"
	"hearth/homeserver/wire"
)

func TestReceiptBodyDecode(t *testing.T) {
	good := []string{
		`{"v":1,"ts":1700000000000,"rcpt":{"kind":"delivered","up_to":3}}`,
		`{"v":1,"rcpt":{"kind":"read","up_to":9007199254740992}}`,
		`{"v":1,"set":{"read-receipts":{"v":"off","at":5},"future-thing":{"v":"x1","at":0}}}`,
		`{"v":1,"text":"no sender time"}`,
	}
	for _, s := range good {
		if _, err := decodeFull([]byte(s)); err != nil {
			t.Errorf("decodeFull(%s): %v", s, err)
		}
	}
	bad := []string{
		`{"v":1,"rcpt":{"kind":"seen","up_to":3}}`,
		`{"v":1,"rcpt":{"kind":"read","up_to":0}}`,
		`{"v":1,"rcpt":{"kind":"read","up_to":9007199254740993}}`,
		`{"v":1,"rcpt":{"kind":"read","up_to":-1}}`,
		`{"v":1,"text":"hi","rcpt":{"kind":"read","up_to":3}}`,
		`{"v":1,"rcpt":{"kind":"read","up_to":3},"set":{}}`,
		`{"v":1,"set":{"Read":{"v":"off","at":1}}}`,
		`{"v":1,"set":{"typing":{"v":"","at":1}}}`,
		`{"v":1,"set":{"typing":{"v":"off","at":-1}}}`,
		`{"v":1,"set":{"typing":{"v":"off\n","at":1}}}`,
		`{"v":2,"rcpt":{"kind":"read","up_to":3}}`,
	}
	for _, s := range bad {
		if _, err := decodeFull([]byte(s)); err == nil {
			t.Errorf("decodeFull(%s) accepted", s)
		}
	}
	var many strings.Builder
	many.WriteString(`{"v":1,"set":{`)
	for i := range maxSettings + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"s%d":{"v":"on","at":1}`, i)
	}
	many.WriteString(`}}`)
	if _, err := decodeFull([]byte(many.String())); err == nil {
		t.Errorf("decodeFull accepted %d settings", maxSettings+1)
	}
}

func TestSenderTime(t *testing.T) {
	for _, c := range []struct {
		ts int64
		ok bool
	}{{0, false}, {-5, false}, {1, true}, {1700000000000, true}, {maxSenderTime, true}, {maxSenderTime + 1, false}} {
		tm, ok := senderTime(c.ts)
		if ok != c.ok {
			t.Errorf("senderTime(%d) ok = %v", c.ts, ok)
		}
		if ok {
			if _, err := json.Marshal(tm); err != nil {
				t.Errorf("senderTime(%d) cannot be printed: %v", c.ts, err)
			}
		}
	}
}

func TestReceiptAdvance(t *testing.T) {
	st := receiptState{}
	if _, moved := st.advance("b", ReceiptDelivered, 3); !moved {
		t.Fatal("first delivery did not move")
	}
	if _, moved := st.advance("b", ReceiptDelivered, 2); moved {
		t.Fatal("an older delivery moved the mark back")
	}
	if old, moved := st.advance("b", ReceiptRead, 5); !moved || old != 0 {
		t.Fatalf("read: old %d moved %v", old, moved)
	}
	if st["b"] != (receiptMark{Delivered: 5, Read: 5}) {
		t.Fatalf("a read does not imply delivery: %+v", st["b"])
	}
}

// receiptStore is a real store in a temporary folder with a direct
// conversation "d@x" with bob and a group "g@x".
func receiptStore(t *testing.T) (*store.Store, *receipts) {
	t.Helper()
	st, err := store.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := 0
	r := &receipts{newID: func() (string, error) { n++; return fmt.Sprintf("id%d", n), nil },
		now: func() time.Time { return time.UnixMilli(1700000000000) }}
	err = st.Update(func(tx *store.Tx) error {
		if err := convstate.Remember(tx, convstate.Conversation{ID: "d@x", Creator: "a@x", Peers: []string{"b@x"}}); err != nil {
			return err
		}
		return convstate.Remember(tx, convstate.Conversation{ID: "g@x", Creator: "a@x", Group: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

func outboxReceipts(t *testing.T, st *store.Store) []receiptBody {
	t.Helper()
	var out []receiptBody
	st.View(func(tx *store.Tx) error {
		items, err := tx.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			b, err := decodeFull(it.Body)
			if err != nil || b.Rcpt == nil {
				t.Fatalf("outbox item %+v is not a receipt: %v", it, err)
			}
			out = append(out, *b.Rcpt)
		}
		return nil
	})
	return out
}

// TestReceiptQueueMerges: receipts waiting in the outbox are merged into
// one per kind and conversation; a sealed one is left alone; a receipt
// that moves nothing is not queued; read receipts of a direct
// conversation are not queued while they are off (groups keep them).
func TestReceiptQueueMerges(t *testing.T) {
	st, r := receiptStore(t)
	queue := func(conv, kind string, seq uint64) bool {
		var id string
		if err := st.Update(func(tx *store.Tx) (err error) { id, err = r.queue(tx, conv, "a@x", kind, seq); return }); err != nil {
			t.Fatal(err)
		}
		return id != ""
	}
	queue("d@x", ReceiptDelivered, 3)
	queue("d@x", ReceiptDelivered, 5)
	if got := outboxReceipts(t, st); !slices.Equal(got, []receiptBody{{Kind: ReceiptDelivered, UpTo: 5}}) {
		t.Fatalf("outbox %+v, want one delivery receipt up to 5", got)
	}
	if queue("d@x", ReceiptDelivered, 4) {
		t.Fatal("a receipt that moves nothing was queued")
	}
	st.Update(func(tx *store.Tx) error { // the sender encrypted it
		it, _ := tx.OutboxItem("id1")
		it.Payload = []byte("sealed")
		return tx.UpdateOutbox(it)
	})
	queue("d@x", ReceiptDelivered, 7)
	queue("d@x", ReceiptRead, 6)
	want := []receiptBody{{Kind: ReceiptDelivered, UpTo: 5}, {Kind: ReceiptDelivered, UpTo: 7}, {Kind: ReceiptRead, UpTo: 6}}
	if got := outboxReceipts(t, st); !slices.Equal(got, want) {
		t.Fatalf("outbox %+v, want %+v", got, want)
	}
	// A read that covers the waiting delivery receipt replaces it.
	queue("d@x", ReceiptRead, 7)
	want = []receiptBody{{Kind: ReceiptDelivered, UpTo: 5}, {Kind: ReceiptRead, UpTo: 7}}
	if got := outboxReceipts(t, st); !slices.Equal(got, want) {
		t.Fatalf("outbox %+v, want %+v (the delivery up to 7 covered by the read)", got, want)
	}
	st.Update(func(tx *store.Tx) error {
		return saveSettings(tx, map[string]setting{"read-receipts": {Value: "off", At: 1}})
	})
	if queue("d@x", ReceiptRead, 9) {
		t.Fatal("read receipt queued in a direct conversation with read receipts off")
	}
	if !queue("g@x", ReceiptRead, 9) {
		t.Fatal("read receipt not queued in a group with read receipts off")
	}
	st.View(func(tx *store.Tx) error {
		s, _ := loadReceipts(tx, "d@x")
		if s["a@x"].Read != 9 {
			t.Errorf("own read mark %d, want 9 (kept while receipts are off)", s["a@x"].Read)
		}
		return nil
	})
}

// TestReceiptApplyAndStatus: a receipt reports the messages it newly
// covers (of other users than the reader) once, and history shows each
// message's state; read receipts of a direct conversation are ignored
// while this user has them off.
func TestReceiptApplyAndStatus(t *testing.T) {
	st, r := receiptStore(t)
	err := st.Update(func(tx *store.Tx) error {
		for i, from := range []string{"a@x", "b@x", "a@x", "a@x"} {
			m := store.Message{ID: fmt.Sprintf("m%d", i+1), Conversation: "g@x", From: from, Seq: uint64(i + 1), Text: "t",
				Recipients: []string{"b@x", "c@x"}}
			if _, err := tx.AddHistory(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(conv, from, kind string, upTo uint64) *store.Message {
		var ev *store.Message
		if err := st.Update(func(tx *store.Tx) (err error) {
			ev, err = r.apply(tx, conv, "a@x", from, receiptBody{Kind: kind, UpTo: upTo})
			return
		}); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := apply("g@x", "b@x", ReceiptDelivered, 3); ev == nil || !slices.Equal(ev.MessageIDs, []string{"m1", "m3"}) || ev.User != "b@x" {
		t.Fatalf("event %+v, want b's delivery of m1 and m3 (m2 is b's own)", ev)
	}
	if ev := apply("g@x", "b@x", ReceiptDelivered, 2); ev != nil {
		t.Fatalf("an older receipt reported %+v", ev)
	}
	apply("g@x", "b@x", ReceiptRead, 4)
	apply("g@x", "c@x", ReceiptDelivered, 1)
	var h []store.Message
	st.View(func(tx *store.Tx) (err error) {
		h, _ = tx.History("g@x", 0)
		h, err = withStatus(tx, "a@x", h)
		return
	})
	want := []string{"m1 delivered [b@x c@x] [b@x]", "m2  [] []", "m3 sent [b@x] [b@x]", "m4 sent [b@x] [b@x]"}
	for i, m := range h {
		if got := fmt.Sprintf("%s %s %v %v", m.ID, m.Status, m.DeliveredTo, m.ReadBy); got != want[i] {
			t.Errorf("history[%d] = %q, want %q", i, got, want[i])
		}
	}

	// A direct conversation with read receipts off: b's read counts as
	// delivery only.
	st.Update(func(tx *store.Tx) error {
		if _, err := tx.AddHistory(store.Message{ID: "d1", Conversation: "d@x", From: "a@x", Seq: 1, Recipients: []string{"b@x"}}); err != nil {
			return err
		}
		return saveSettings(tx, map[string]setting{"read-receipts": {Value: "off", At: 1}})
	})
	if ev := apply("d@x", "b@x", ReceiptRead, 1); ev == nil || ev.Kind != ReceiptDelivered {
		t.Fatalf("read receipt with receipts off gave %+v, want a delivery", ev)
	}
	st.View(func(tx *store.Tx) error {
		h, _ := tx.History("d@x", 0)
		h, _ = withStatus(tx, "a@x", h)
		if h[0].Status != "delivered" || h[0].ReadBy != nil {
			t.Errorf("direct message %+v, want delivered and no reader", h[0])
		}
		return nil
	})
}

// TestSettingsMerge: the latest choice of each setting wins whatever the
// order; settings from another user are ignored; devices agree on one
// settings group.
func TestSettingsMerge(t *testing.T) {
	st, _ := receiptStore(t)
	log := slog.New(slog.DiscardHandler)
	apply := func(conv, from string, set map[string]setting) {
		if err := st.Update(func(tx *store.Tx) error { return applySettings(tx, conv, "a@x", from, set, log) }); err != nil {
			t.Fatal(err)
		}
	}
	apply("s2@x", "a@x", map[string]setting{"typing": {"off", 20}, "read-receipts": {"off", 10}})
	apply("s1@x", "a@x", map[string]setting{"typing": {"on", 15}, "read-receipts": {"on", 30}})
	apply("s0@x", "b@x", map[string]setting{"typing": {"on", 99}})
	st.View(func(tx *store.Tx) error {
		if got := settingIn(tx, "typing"); got != "off" {
			t.Errorf("typing = %s, want off (the later choice)", got)
		}
		if got := settingIn(tx, "read-receipts"); got != "on" {
			t.Errorf("read-receipts = %s, want on", got)
		}
		if got := string(tx.Meta(settingsConvName)); got != "s1@x" {
			t.Errorf("settings group %q, want s1@x (the least id seen from this user)", got)
		}
		return nil
	})
}

// FuzzDecodeReceiptBody: receipts and settings come from other devices;
// decoding must never panic, and what it accepts must be valid and
// survive re-encoding unchanged.
func FuzzDecodeReceiptBody(f *testing.F) {
	f.Add([]byte(`{"v":1,"ts":1700000000000,"rcpt":{"kind":"read","up_to":42}}`))
	f.Add([]byte(`{"v":1,"rcpt":{"kind":"delivered","up_to":1}}`))
	f.Add([]byte(`{"v":1,"set":{"typing":{"v":"off","at":1700000000000}}}`))
	f.Add([]byte(`{"v":1,"rcpt":{"kind":"read","up_to":1e3}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeFull(b)
		if err != nil {
			return
		}
		if m.Rcpt != nil {
			if err := m.Rcpt.check(); err != nil {
				t.Fatalf("accepted an invalid receipt: %v", err)
			}
		}
		if m.Set != nil {
			if err := checkSettings(m.Set); err != nil {
				t.Fatalf("accepted invalid settings: %v", err)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeFull(again)
		if err != nil {
			t.Fatalf("re-encoded body refused: %v", err)
		}
		if (m.Rcpt == nil) != (m2.Rcpt == nil) || m.Rcpt != nil && *m.Rcpt != *m2.Rcpt || m.TS != m2.TS || len(m.Set) != len(m2.Set) {
			t.Fatalf("re-encoding changed %+v into %+v", m, m2)
		}
	})
}

// TestReceiptReadSyncWhenOff: with read receipts off, a read in a direct
// conversation goes to this user's settings group only (with the
// conversation named), and only this user's devices may apply such a
// receipt.
func TestReceiptReadSyncWhenOff(t *testing.T) {
	st, r := receiptStore(t)
	err := st.Update(func(tx *store.Tx) error {
		if err := tx.PutMeta(settingsConvName, []byte("s@x")); err != nil {
			return err
		}
		if err := saveSettings(tx, map[string]setting{"read-receipts": {Value: "off", At: 1}}); err != nil {
			return err
		}
		_, err := tx.AddHistory(store.Message{ID: "b1", Conversation: "d@x", From: "b@x", Seq: 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Update(func(tx *store.Tx) error {
		if id, err := r.queue(tx, "d@x", "a@x", ReceiptRead, 1); id == "" || err != nil {
			t.Fatalf("read not queued for this user's devices: %q %v", id, err)
		}
		return nil
	})
	st.View(func(tx *store.Tx) error {
		items, _ := tx.Outbox()
		if len(items) != 1 || items[0].Conversation != "s@x" {
			t.Fatalf("outbox %+v, want one item to the settings group", items)
		}
		b, err := decodeFull(items[0].Body)
		if err != nil || b.Rcpt == nil || b.Rcpt.Conv != "d@x" || b.Rcpt.Kind != ReceiptRead {
			t.Fatalf("settings group receipt %s: %v", items[0].Body, err)
		}
		return nil
	})
	apply := func(from string) *store.Message {
		var ev *store.Message
		st.Update(func(tx *store.Tx) (err error) {
			ev, err = r.apply(tx, "s@x", "a@x", from, receiptBody{Kind: ReceiptRead, UpTo: 1, Conv: "d@x"})
			return err
		})
		return ev
	}
	st.Update(func(tx *store.Tx) error { // as on another device of a@x, which has not read it
		return saveReceipts(tx, "d@x", receiptState{})
	})
	if ev := apply("b@x"); ev != nil {
		t.Fatalf("another user's receipt for a named conversation applied: %+v", ev)
	}
	if ev := apply("a@x"); ev == nil || ev.Conversation != "d@x" || !slices.Equal(ev.MessageIDs, []string{"b1"}) {
		t.Fatalf("own read of d@x gave %+v", ev)
	}
}

// TestBodyGone: a receipt that could not be encrypted is dropped only when
// it can never be sent from this device; a failure that may pass (the
// conversation out of step, not given up yet) keeps it.
func TestBodyGone(t *testing.T) {
	offline := func(context.Context, string, string) (io.ReadWriteCloser, error) {
		return nil, errors.New("bodyGone reads only the store")
	}
	c, err := Open(Config{Profile: t.TempDir(), Dial: offline})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const conv = "c1@a.example"
	it := store.OutboxItem{ID: "r1", Conversation: conv, Body: []byte(`{"v":1}`)}
	soft := wire.Errorf("client.Heal", wire.Code_CODE_FORBIDDEN, "rejoining failed")
	update := func(f func(tx *store.Tx) error) {
		t.Helper()
		if err := c.st.Update(f); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err error, want bool) {
		t.Helper()
		if got := c.bodyGone(it, err); got != want {
			t.Errorf("%s: bodyGone = %v, want %v", what, got, want)
		}
	}
	check("no state of the conversation", soft, true)
	update(func(tx *store.Tx) error {
		return convstate.Remember(tx, convstate.Conversation{ID: conv, Peers: []string{"b@a.example"}})
	})
	check("a rejoin that failed", soft, false)
	check("a local error", fmt.Errorf("disk trouble"), false)
	check("not a member", notMemberAnymore(conv), true)
	check("revoked", wire.E("test", wire.Code_CODE_DEVICE_REVOKED), true)
	update(func(tx *store.Tx) error {
		return convstate.PutOutOfStep(tx, conv, convstate.OutOfStep{Cause: "test", Tries: convstate.MaxHealTries - 1})
	})
	check("out of step, still rejoining", soft, false)
	update(func(tx *store.Tx) error {
		return convstate.PutOutOfStep(tx, conv, convstate.OutOfStep{Cause: "test", Tries: convstate.MaxHealTries})
	})
	check("out of step, rejoining given up", soft, true)
	update(func(tx *store.Tx) error {
		if err := convstate.ClearOutOfStep(tx, conv); err != nil {
			return err
		}
		return tx.PutMeta(goneName(conv), []byte("left"))
	})
	check("left the conversation", soft, true)
}
