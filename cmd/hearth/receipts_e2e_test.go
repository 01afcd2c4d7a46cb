package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"hearth/homeserver/certs"
)

// rcptMsg is a history --json line with the receipt fields.
type rcptMsg struct {
	ID          string   `json:"id"`
	From        string   `json:"from"`
	Text        string   `json:"text"`
	Seq         uint64   `json:"seq"`
	Event       string   `json:"event"`
	SentAt      string   `json:"sent_at"`
	ServerTime  string   `json:"server_time"`
	Status      string   `json:"status"`
	Recipients  []string `json:"recipients"`
	DeliveredTo []string `json:"delivered_to"`
	ReadBy      []string `json:"read_by"`
}

// rcptEvent is a receipt event of recv --json --signals.
type rcptEvent struct {
	Event        string   `json:"event"`
	Conversation string   `json:"conversation"`
	MessageIDs   []string `json:"message_ids"`
	User         string   `json:"user"`
	Kind         string   `json:"kind"`
}

// rcptHistory returns p's history of target, messages only, by id.
func rcptHistory(t *testing.T, p *profile, target string) map[string]rcptMsg {
	t.Helper()
	out := map[string]rcptMsg{}
	for _, line := range strings.Split(strings.TrimSpace(p.must(t, "", "history", target, "--json")), "\n") {
		if line == "" {
			continue
		}
		var m rcptMsg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("history line %q: %v", line, err)
		}
		if m.Event == "" {
			out[m.ID] = m
		}
	}
	return out
}

// recvQuiet is recv's --timeout in the receipt tests: what the other side
// sent is on the server when its command returns, so a second of silence
// after catching up means nothing more is coming (federated tests wait
// longer: receipts cross servers after the command returns).
func recvQuiet(t *testing.T) string {
	if _, slow := slowRecv.Load(t.Name()); slow {
		return "2s"
	}
	return "1s"
}

// slowRecv holds the names of the (federated) tests whose recv waits 2 s.
var slowRecv sync.Map

// recvReceipts runs recv --json --signals on p and returns the receipt
// events and the texts of the messages it printed.
func recvReceipts(t *testing.T, p *profile, args ...string) (evs []rcptEvent, texts []string) {
	t.Helper()
	out := p.must(t, "", append([]string{"recv", "--json", "--signals", "--timeout", recvQuiet(t)}, args...)...)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev rcptEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("recv line %q: %v", line, err)
		}
		if ev.Event == "receipt" {
			evs = append(evs, ev)
			continue
		}
		var m rcptMsg
		json.Unmarshal([]byte(line), &m)
		if m.Event == "" && m.Text != "" {
			texts = append(texts, m.Text)
		}
	}
	return evs, texts
}

// receiptIDs collects the message ids of the events of kind by user,
// failing if an id is reported twice (a duplicated receipt).
func receiptIDs(t *testing.T, evs []rcptEvent, kind, user string, seen map[string]bool) []string {
	t.Helper()
	var ids []string
	for _, ev := range evs {
		if ev.Kind != kind || ev.User != user {
			continue
		}
		for _, id := range ev.MessageIDs {
			if seen[kind+" "+user+" "+id] {
				t.Fatalf("%s receipt of %s for %s reported twice: %+v", kind, user, id, evs)
			}
			seen[kind+" "+user+" "+id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string { s := slices.Clone(ids); sort.Strings(s); return s }

// checkStatus fails unless p's history of target shows message id with
// status, delivered to and read by the given users.
func checkStatus(t *testing.T, p *profile, target, id, status string, delivered, read []string) {
	t.Helper()
	m, ok := rcptHistory(t, p, target)[id]
	if !ok {
		t.Fatalf("%s: history of %s has no message %s", p.dir, target, id)
	}
	if m.Status != status || strings.Join(m.DeliveredTo, ",") != strings.Join(delivered, ",") || strings.Join(m.ReadBy, ",") != strings.Join(read, ",") {
		t.Fatalf("%s: message %s (%q) is %q delivered to %v read by %v; want %q, %v, %v",
			p.dir, id, m.Text, m.Status, m.DeliveredTo, m.ReadBy, status, delivered, read)
	}
}

// sendID sends text from p to target and returns the message id.
func sendID(t *testing.T, p *profile, target, text string) string {
	t.Helper()
	id := keyValues(p.must(t, "", "send", target, text))["id"]
	if id == "" {
		t.Fatalf("send printed no id")
	}
	return id
}

// directReceipts drives receipts in the 1:1 conversation of a and b
// (addresses aAt and bAt): sent → delivered → read, batched, cumulative,
// --up-to, --mark-read, no duplicates, nothing in history.
func directReceipts(t *testing.T, a, b *profile, aAt, bAt string) {
	r1, r2 := sendID(t, a, bAt, "r1"), sendID(t, a, bAt, "r2")
	h := rcptHistory(t, a, bAt)
	for _, id := range []string{r1, r2} {
		m := h[id]
		if m.Status != "sent" || strings.Join(m.Recipients, ",") != bAt || m.SentAt == "" || m.ServerTime == "" {
			t.Fatalf("fresh message %+v: want status sent, recipients [%s], sent_at and server_time", m, bAt)
		}
	}
	seen := map[string]bool{}
	if evs, texts := recvReceipts(t, b); strings.Join(texts, ",") != "r1,r2" || len(evs) != 0 {
		t.Fatalf("%s received %v and receipts %+v; want r1,r2 and no receipt", bAt, texts, evs)
	}
	bh := rcptHistory(t, b, aAt)
	if m := bh[r1]; m.ServerTime == "" || m.SentAt == "" || m.Status != "" {
		t.Fatalf("received message %+v: want sent_at and server_time, no status", m)
	}
	evs, _ := recvReceipts(t, a)
	if got := receiptIDs(t, evs, "delivered", bAt, seen); !slices.Equal(got, sorted(r1, r2)) {
		t.Fatalf("delivery receipts for %v, want %v (%+v)", got, sorted(r1, r2), evs)
	}
	checkStatus(t, a, bAt, r1, "delivered", []string{bAt}, nil)
	checkStatus(t, a, bAt, r2, "delivered", []string{bAt}, nil)

	// Read up to r1, then the rest: cumulative, each id reported once.
	out := keyValues(b.must(t, "", "read", aAt, "--up-to", r1))
	if out["read-up-to"] != fmt.Sprint(h[r1].Seq) {
		t.Fatalf("read printed %v, want read-up-to %d", out, h[r1].Seq)
	}
	evs, _ = recvReceipts(t, a)
	if got := receiptIDs(t, evs, "read", bAt, seen); !slices.Equal(got, []string{r1}) {
		t.Fatalf("read receipts for %v, want [%s] (%+v)", got, r1, evs)
	}
	checkStatus(t, a, bAt, r1, "read", []string{bAt}, []string{bAt})
	checkStatus(t, a, bAt, r2, "delivered", []string{bAt}, nil)
	b.must(t, "", "read", aAt)
	b.must(t, "", "read", aAt) // nothing new: no second receipt
	evs, _ = recvReceipts(t, a)
	if got := receiptIDs(t, evs, "read", bAt, seen); !slices.Equal(got, []string{r2}) || len(evs) != 1 {
		t.Fatalf("read receipts for %v in %+v, want one for [%s]", got, evs, r2)
	}
	checkStatus(t, a, bAt, r2, "read", []string{bAt}, []string{bAt})

	// recv --mark-read: what b prints is read at once.
	r3 := sendID(t, a, bAt, "r3")
	if _, texts := recvReceipts(t, b, "--mark-read"); strings.Join(texts, ",") != "r3" {
		t.Fatalf("recv --mark-read printed %v", texts)
	}
	evs, _ = recvReceipts(t, a)
	if got := receiptIDs(t, evs, "read", bAt, seen); !slices.Equal(got, []string{r3}) {
		t.Fatalf("read receipts for %v, want [%s] (%+v)", got, r3, evs)
	}
	checkStatus(t, a, bAt, r3, "read", []string{bAt}, []string{bAt})

	// recv --follow --signals prints receipts as they come.
	events := followSignals(t, a)
	r4 := sendID(t, a, bAt, "r4")
	isReceipt := func(kind string) func(map[string]any) bool {
		return func(m map[string]any) bool {
			ids, _ := m["message_ids"].([]any)
			return m["event"] == "receipt" && m["kind"] == kind && m["user"] == bAt && len(ids) == 1 && ids[0] == r4
		}
	}
	recvReceipts(t, b)
	await(t, events, "delivery receipt of r4", isReceipt("delivered"))
	b.must(t, "", "read", aAt)
	await(t, events, "read receipt of r4", isReceipt("read"))

	// Receipts never enter history, and the marks print as documented.
	if n := sameHistory(t, []*profile{a, b}, []string{bAt, aAt}); n != 4 {
		t.Fatalf("history has %d entries, want the 4 messages", n)
	}
	for _, c := range []struct{ locale, mark string }{{"C.UTF-8", "r4 ✓✓ read"}, {"C", "r4 (read)"}} {
		r := hearth(t, []string{"LC_ALL=" + c.locale}, "", "chat", "--profile", a.dir, "history", bAt)
		if r.code != 0 || !strings.Contains(r.stdout, c.mark) {
			t.Fatalf("history under LC_ALL=%s: %q, want %q", c.locale, r.stdout, c.mark)
		}
	}
}

// TestReceiptsDirectE2E: receipts in a 1:1 conversation on one server
// and (with -receipts.fed) across two federated servers, with the real
// binary.
func TestReceiptsDirectE2E(t *testing.T) {
	parallelE2E(t)
	t.Run("one server", func(t *testing.T) {
		_, a1, b1 := newMessagingNet(t)
		directReceipts(t, a1, b1, aliceAddr, bobAddr)
	})
	t.Run("two servers", func(t *testing.T) {
		skipUnlessReceiptsFed(t)
		a, b := newFedServer(t, "a.example"), newFedServer(t, "b.example")
		a.admin(t, "", "federation", "peer", "add", "b.example", "--address", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile))
		b.admin(t, "", "federation", "peer", "add", "a.example", "--address", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile))
		mustHearth(t, password("alice"), "admin", "--dir", a.dir, "user", "add", "alice", "--password-stdin")
		mustHearth(t, password("bob"), "admin", "--dir", b.dir, "user", "add", "bob", "--password-stdin")
		alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
		alice.must(t, password("alice"), "login", "alice@a.example", "--server", a.listen, "--ca", filepath.Join(a.dir, certs.CAFile), "--password-stdin")
		bob.must(t, password("bob"), "login", "bob@b.example", "--server", b.listen, "--ca", filepath.Join(b.dir, certs.CAFile), "--password-stdin")
		directReceipts(t, alice, bob, "alice@a.example", "bob@b.example")
	})
}
