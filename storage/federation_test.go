package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

// TestFederationQueues: per-destination order, dequeue, pending verdicts
// resolved once, remote list versions only grow, dedup records expire.
func TestFederationQueues(t *testing.T) {
	db, _ := openTest(t)
	mustWrite(t, db, func(tx *Tx) error {
		for i, d := range []string{"b", "c", "b", "b"} {
			if err := tx.Enqueue(&OutEnvelope{Destination: d, EnvelopeID: string(rune('w' + i)), Envelope: []byte{byte(i)}, CreatedMs: int64(i)}); err != nil {
				return err
			}
		}
		if err := tx.Enqueue(&OutEnvelope{Destination: "b", EnvelopeID: "w", Envelope: []byte{9}}); !errors.Is(err, ErrConflict) {
			t.Errorf("same envelope id queued twice: %v", err)
		}
		return nil
	})
	var got []*OutEnvelope
	mustWrite(t, db, func(tx *Tx) (err error) { got, err = tx.Outbox("b", 2); return err })
	if len(got) != 2 || got[0].EnvelopeID != "w" || got[1].EnvelopeID != "y" {
		t.Fatalf("outbox b: %+v", got)
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.Dequeue([]int64{got[0].ID}) })
	var depths map[string]int
	mustWrite(t, db, func(tx *Tx) (err error) { depths, err = tx.QueueDepths(); return err })
	if depths["b"] != 2 || depths["c"] != 1 {
		t.Fatalf("depths %v", depths)
	}

	mustWrite(t, db, func(tx *Tx) error {
		p := &Pending{Sender: "u@a/D", MessageID: "m", ConvID: "c@b", EnvelopeID: "sub-1", CreatedMs: 1}
		if err := tx.InsertPending(p); err != nil {
			return err
		}
		if err := tx.InsertPending(p); !errors.Is(err, ErrConflict) {
			t.Errorf("pending twice: %v", err)
		}
		if err := tx.ResolvePending("sub-1", 0, "", 7, 2); err != nil {
			return err
		}
		if err := tx.ResolvePending("sub-1", 6, "late", 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("second verdict taken: %v", err)
		}
		got, err := tx.PendingSend("u@a/D", "m")
		if err != nil || !got.Done || got.Code != 0 || got.ConvSeq != 7 || got.Epoch != 2 {
			t.Errorf("pending after verdict: %+v %v", got, err)
		}
		return nil
	})

	mustWrite(t, db, func(tx *Tx) error {
		for _, v := range []uint64{3, 2, 5} {
			if err := tx.PutRemoteList(&RemoteList{User: "x@b", Version: v, List: []byte{byte(v)}}); err != nil {
				return err
			}
		}
		r, err := tx.RemoteList("x@b")
		if err != nil || r.Version != 5 || r.List[0] != 5 {
			t.Errorf("remote list %+v %v", r, err)
		}
		return nil
	})

	mustWrite(t, db, func(tx *Tx) error {
		if err := tx.MarkEnvelope("b", "e1", 10); err != nil {
			return err
		}
		if err := tx.MarkEnvelope("b", "e1", 11); !errors.Is(err, ErrConflict) {
			t.Errorf("envelope marked twice: %v", err)
		}
		if err := tx.PutInboundTxn("b", "t1", []byte("h"), []byte("r"), 10); err != nil {
			return err
		}
		n, err := tx.DeleteFederationRecords(100, 10)
		if err != nil || n != 3 { // txn, envelope, answered submission
			t.Errorf("deleted %d: %v", n, err)
		}
		seen, err := tx.SeenEnvelope("b", "e1")
		if err != nil || seen {
			t.Errorf("envelope record survived: %v %v", seen, err)
		}
		return nil
	})
	if err := db.Read(context.Background(), func(tx *Tx) error { _, _, err := tx.InboundTxn("b", "t1"); return err }); !errors.Is(err, ErrNotFound) {
		t.Errorf("transaction record survived: %v", err)
	}
}

// TestFedServerKeyRotation: a rotation retires the old key and stores the
// new current one (public halves only); a second key with the same id is
// refused. Token keys rotate the same way in their own table.
func TestFedServerKeyRotation(t *testing.T) {
	db, _ := openTest(t)
	old := &FedServerKey{ID: "k1", Public: []byte{1}, ValidFromMs: 0}
	next := &FedServerKey{ID: "k2", Public: []byte{2}, ValidFromMs: 100}
	mustWrite(t, db, func(tx *Tx) error { return tx.RotateFedServerKey(old, next, 150) })
	var ks []*FedServerKey
	mustWrite(t, db, func(tx *Tx) (err error) { ks, err = tx.FedServerKeys(); return err })
	if len(ks) != 2 || ks[0].ID != "k1" || ks[0].ValidUntilMs != 150 || ks[1].ID != "k2" || ks[1].ValidUntilMs != 0 {
		t.Fatalf("after rotation: %+v %+v", ks[0], ks[1])
	}
	third := &FedServerKey{ID: "k3", Public: []byte{3}, ValidFromMs: 200}
	mustWrite(t, db, func(tx *Tx) error { return tx.RotateFedServerKey(ks[1], third, 260) })
	mustWrite(t, db, func(tx *Tx) (err error) { ks, err = tx.FedServerKeys(); return err })
	if len(ks) != 3 || ks[1].ValidUntilMs != 260 || ks[2].ID != "k3" {
		t.Fatalf("after second rotation: %+v", ks)
	}
	err := db.Write(context.Background(), func(tx *Tx) error { return tx.RotateFedServerKey(ks[2], ks[2], 300) })
	if err == nil {
		t.Fatal("rotation to the same key accepted")
	}
	mustWrite(t, db, func(tx *Tx) error { return tx.RotateTokenKey(old, next, 170) })
	mustWrite(t, db, func(tx *Tx) (err error) { ks, err = tx.TokenKeys(); return err })
	if len(ks) != 2 || ks[0].ID != "k1" || ks[0].ValidUntilMs != 170 || ks[1].ID != "k2" || ks[1].ValidUntilMs != 0 {
		t.Fatalf("token keys: %+v", ks)
	}
}

// TestMoveFedKeySeeds: a database written by a version that kept the
// current federation key's seed in fed_server_keys (and dropped retired
// seeds with a plain UPDATE) gets every stored seed handed out once, and
// afterwards neither that seed nor a retired one is anywhere in the
// database file or its WAL. A second run finds nothing to move.
func TestMoveFedKeySeeds(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	seed := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	retired, current := seed(0xA7), seed(0xC3)
	// The old layout: k1 had its seed until a rotation set it to NULL; k2 is current.
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES ('k1', x'01', ?, 0, 0)`, []any{retired}},
		{`UPDATE fed_server_keys SET seed = NULL, valid_until_ms = 50 WHERE key_id = 'k1'`, nil},
		{`INSERT INTO fed_server_keys(key_id, public_key, seed, valid_from_ms, valid_until_ms) VALUES ('k2', x'02', ?, 40, 0)`, []any{current}},
	} {
		if _, err := db.w.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(b []byte) bool {
		for _, f := range []string{path, path + "-wal"} {
			raw, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(raw, b) {
				return true
			}
		}
		return false
	}
	if !holds(current) {
		t.Fatal("test setup: the current seed is not in the files")
	}
	got := map[string][]byte{}
	n, err := db.MoveFedKeySeeds(ctx, func(id string, s []byte) error { got[id] = s; return nil })
	if err != nil || n != 1 || !bytes.Equal(got["k2"], current) || len(got) != 1 {
		t.Fatalf("moved %d %v: %x", n, err, got)
	}
	if holds(current) || holds(retired) {
		t.Fatal("a seed is still in hearth.db or its WAL")
	}
	var ks []*FedServerKey
	mustWrite(t, db, func(tx *Tx) (err error) { ks, err = tx.FedServerKeys(); return err })
	if len(ks) != 2 || ks[1].ID != "k2" || ks[0].ValidUntilMs != 50 {
		t.Fatalf("keys after the move: %+v", ks)
	}
	if n, err := db.MoveFedKeySeeds(ctx, func(string, []byte) error { t.Error("moved again"); return nil }); n != 0 || err != nil {
		t.Fatalf("second move: %d %v", n, err)
	}
	// A failing keep changes nothing.
	if _, err := db.w.ExecContext(ctx, `UPDATE fed_server_keys SET seed = ? WHERE key_id = 'k2'`, current); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MoveFedKeySeeds(ctx, func(string, []byte) error { return errors.New("disk full") }); err == nil {
		t.Fatal("a failed keep was ignored")
	}
	var left int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM fed_server_keys WHERE seed IS NOT NULL`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("seed wiped although keeping it failed: %d %v", left, err)
	}
}
