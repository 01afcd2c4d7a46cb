//go:build sqlite_dbstat

package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
)

// walPageNumbers returns the page number of every frame in db's WAL file
// from frame index from on (frames of a checkpoint-free WAL, in order).
func walPageNumbers(tb testing.TB, path string, from int64) []uint32 {
	f, err := os.Open(path + "-wal")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	const frame = 24 + 4096
	if _, err := f.Seek(32+from*frame, io.SeekStart); err != nil {
		tb.Fatal(err)
	}
	var pages []uint32
	buf := make([]byte, frame)
	for {
		if _, err := io.ReadFull(f, buf); err != nil {
			return pages
		}
		pages = append(pages, binary.BigEndian.Uint32(buf[:4]))
	}
}

// BenchmarkSendPagesByTree is BenchmarkSendPages with its WAL pages per
// transaction told apart by the B-tree each page belongs to (the dbstat
// virtual table, hence the build tag):
//
//	go test -tags sqlite_dbstat ./storage -run '^$' -bench SendPagesByTree -benchtime 400x
//
// ids=short are BenchmarkSendPages' message ids ("m" and a count);
// ids=hex32 are 32 random hex digits, as the client makes them;
// ids=hex32gi are those with a GroupInfo of 4,233 bytes stored for each
// conversation, the size the 1:1 conversations of `hearth bench pairs`
// have (suite 0xF001).
// Each metric is one B-tree's pages per transaction; "other" are pages
// dbstat does not place (page 1 is the header: schema cookie and change
// counter, written by every transaction; freelist pages).
func BenchmarkSendPagesByTree(b *testing.B) {
	for _, ids := range []string{"short", "hex32", "hex32gi"} {
		for _, perTx := range []int{1, 2, 8} {
			b.Run(fmt.Sprintf("ids=%s/sends=%d", ids, perTx), func(b *testing.B) {
				gi := 0
				if ids == "hex32gi" {
					gi = 4233
				}
				sendPagesByTree(b, ids != "short", gi, perTx)
			})
		}
	}
}

func sendPagesByTree(b *testing.B, hexIDs bool, groupInfo, perTx int) {
	db, path, send := walPagesDB(b, func(db *DB) func(*Tx) error {
		if hexIDs {
			return hexIDSends(b, db, 100, groupInfo)
		}
		return oneToOneSends(b, db, 100, func(n int) int { return n % 2 })
	})
	b.ResetTimer()
	for range b.N {
		sendsPerTx(b, db, send, perTx)
	}
	b.StopTimer()
	pages := walPageNumbers(b, path, 0)
	owner := map[uint32]string{1: "header"}
	rows, err := db.w.QueryContext(context.Background(), `SELECT name, pageno FROM dbstat`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var name string
		var p uint32
		if err := rows.Scan(&name, &p); err != nil {
			b.Fatal(err)
		}
		if p != 1 {
			owner[p] = name
		}
	}
	if err := rows.Close(); err != nil {
		b.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range pages {
		name, ok := owner[p]
		if !ok {
			name = "other"
		}
		count[name]++
	}
	var names []string
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	var line []string
	for _, n := range names {
		per := float64(count[n]) / float64(b.N)
		b.ReportMetric(per, n+"/tx")
		line = append(line, fmt.Sprintf("%s %.2f", n, per))
	}
	b.ReportMetric(float64(len(pages))/float64(b.N), "pages/tx")
	b.Logf("sends=%d: %s", perTx, strings.Join(line, ", "))
}

// hexIDSends is oneToOneSends with message ids of 32 random hex digits
// (a fixed seed: the same ids in every run) and, unless groupInfo is 0, a
// GroupInfo of that many bytes stored for each conversation.
func hexIDSends(b *testing.B, db *DB, convs, groupInfo int) func(*Tx) error {
	ids := make([][]string, convs)
	for i := range ids {
		ids[i] = fixture(b, db, fmt.Sprint("p", i), 2)
		if groupInfo > 0 {
			gi := make([]byte, groupInfo)
			for k := range gi {
				gi[k] = byte(i + k)
			}
			mustWrite(b, db, func(tx *Tx) error { return tx.AdvanceConversation(fmt.Sprintf("p%d@x", i), 1, gi, 0, true) })
		}
	}
	payload := make([]byte, 300)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	return func(tx *Tx) error {
		c := n % convs
		n++
		id := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		return sendLikeHub(tx, fmt.Sprintf("p%d@x", c), ids[c][n%2], id, payload, int64(n))
	}
}
