package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hearth/keys/testutil"
)

// loadSend is one send of the load loop that the server acknowledged.
type loadSend struct {
	text  string
	acked time.Time
}

// TestBackupRestoreUnderLoadE2E takes `hearth admin backup` while carol's
// sends and `hearth bench pairs` run (once /metrics shows the bench's
// messages flowing; the bench then reports nothing lost or duplicated),
// restores it into a new folder and serves it: every message acknowledged
// before the backup began is there, once, with its media file; a device
// that had moved past the backup gets nothing twice and later messages
// arrive; corrupted and truncated archives are refused and write nothing.
func TestBackupRestoreUnderLoadE2E(t *testing.T) {
	skipShort(t)
	// As newMessagingNet (a fixed port, kept by the restored folder), with
	// metrics to see the load.
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--domain", "localhost", "--listen", freePort(t))
	maddr := freePort(t)
	n := &chatNet{dir: dir, ca: filepath.Join(dir, "ca.pem")}
	n.srv = startServe(t, dir, nil, "--dir", dir, "--metrics", maddr)
	a1, b1, c1 := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	for _, p := range []*profile{a1, b1, c1} {
		mustHearth(t, password(p.user), "admin", "--dir", dir, "user", "add", p.user, "--password-stdin")
		p.must(t, password(p.user), p.loginArgs(n)...)
	}

	// Both conversations exist (their MLS commits are done) before the backup.
	a1.must(t, "", "send", bobAddr, "hello")
	c1.must(t, "", "send", bobAddr, "hi from carol")
	expectRecvQuick(t, b1, "alice@localhost:hello", "carol@localhost:hi from carol")
	// b0 is bob's device as it is now: a copy of the profile that will
	// read, after the restore, what the restored mailbox holds past here.
	b0 := &profile{dir: filepath.Join(t.TempDir(), "bob-copy"), user: "bob"}
	copyTree(t, b1.dir, b0.dir)

	// Acknowledged before the backup, not yet received: text and a file.
	file := make([]byte, 200<<10)
	rand.Read(file)
	fpath := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(fpath, file, 0o600); err != nil {
		t.Fatal(err)
	}
	mediaMsg := keyValues(a1.must(t, "", "send", bobAddr, "--file", fpath))["id"]
	if mediaMsg == "" {
		t.Fatal("send --file printed no id")
	}
	var before []string
	for i := range 3 {
		txt := fmt.Sprintf("before-%d", i)
		a1.must(t, "", "send", bobAddr, txt)
		before = append(before, "alice@localhost:"+txt)
	}

	// Load: carol sends in a loop, and bench pairs runs flat out beside.
	var mu sync.Mutex
	var sends []loadSend
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			txt := fmt.Sprintf("load-%d", i)
			if exec.Command(hearthBin, "chat", "--profile", c1.dir, "send", bobAddr, txt).Run() == nil {
				mu.Lock()
				sends = append(sends, loadSend{text: txt, acked: time.Now()})
				mu.Unlock()
			}
		}
	}()
	accepted := scrape(t, maddr)["hearth_messages_accepted_total"]
	benchOut := make(chan []byte, 1)
	go func() {
		defer wg.Done()
		out, _ := exec.Command(hearthBin, "bench", "--dir", n.dir, "--json", "--profiles", filepath.Join(t.TempDir(), "bench"),
			"pairs", "--users", "4", "--duration", "4s", "--size", "200").Output()
		benchOut <- out
	}()
	loaded := func(k int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(sends) < k {
				return fmt.Errorf("%d load sends acknowledged, waiting for %d", len(sends), k)
			}
			return nil
		}
	}
	testutil.WaitFor(t, 60*time.Second, loaded(2))
	// The bench's messages flow too (it logs its users in first).
	testutil.WaitFor(t, 60*time.Second, func() error {
		if got := scrape(t, maddr)["hearth_messages_accepted_total"]; got < accepted+50 {
			return fmt.Errorf("%v messages accepted since the load began, waiting for 50", got-accepted)
		}
		return nil
	})
	archive := filepath.Join(t.TempDir(), "hearth-backup.tar.gz")
	if r := hearth(t, nil, "", "admin", "--dir", n.dir, "backup", "--out", filepath.Join(n.dir, "b.tar")); r.code == 0 ||
		!strings.Contains(r.stderr, "inside the data folder") {
		t.Fatalf("a backup into the data folder: exit %d, %s", r.code, r.stderr)
	}
	began := time.Now()
	out := mustHearth(t, "", "admin", "--dir", n.dir, "backup", "--out", archive)
	kv := keyValues(out)
	if kv["backup"] != archive || kv["media"] != "1" || kv["files"] == "" {
		t.Fatalf("backup printed:\n%s", out)
	}
	mu.Lock()
	k := len(sends)
	mu.Unlock()
	testutil.WaitFor(t, 60*time.Second, loaded(k+2)) // the load went on after the backup
	close(stop)
	wg.Wait()
	// The live traffic lost nothing and duplicated nothing during the backup.
	var rep map[string]any
	if b := <-benchOut; json.Unmarshal(b, &rep) != nil {
		t.Fatalf("bench pairs beside the backup printed:\n%s", b)
	}
	if sent, acked, delivered := num(t, rep, "sent"), num(t, rep, "acked"), num(t, rep, "delivered"); sent == 0 || acked != sent || delivered != acked ||
		num(t, rep, "lost") != 0 || num(t, rep, "duplicates") != 0 {
		t.Fatalf("bench pairs beside the backup: %v", rep)
	}
	if _, err := os.Stat(archive + ".partial"); err == nil {
		t.Fatal("the .partial file was left behind")
	}

	// After the backup: bob's device receives everything, so it has
	// acknowledged entries the backup does not hold.
	a1.must(t, "", "send", bobAddr, "after-backup")
	got := parseMsgs(t, b1.must(t, "", "recv", "--json", "--timeout", "1s"))
	if !containsAll(texts(got), append(before, "alice@localhost:after-backup")) || !hasID(got, mediaMsg) {
		t.Fatalf("bob before the restore got %v", texts(got))
	}
	n.srv.stop(t, syscall.SIGTERM)

	checkRefused(t, archive)

	restored := filepath.Join(t.TempDir(), "restored")
	out = mustHearth(t, "", "restore", "--dir", restored, "--from", archive)
	if !strings.Contains(out, "restored "+restored) {
		t.Fatalf("restore printed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(restored, "media")); err != nil {
		t.Fatalf("restored folder has no media: %v", err)
	}
	n.dir = restored
	n.srv = startServe(t, restored, nil, "--dir", restored)

	// The copy of bob's device reads the restored mailbox: every message
	// acknowledged before the backup began, each once.
	var wantLoad []string
	all := map[string]bool{}
	for _, s := range sends {
		all["carol@localhost:"+s.text] = true
		if s.acked.Before(began) {
			wantLoad = append(wantLoad, "carol@localhost:"+s.text)
		}
	}
	if len(wantLoad) < 2 {
		t.Fatalf("only %d load sends acknowledged before the backup", len(wantLoad))
	}
	copyMsgs := parseMsgs(t, b0.must(t, "", "recv", "--json", "--timeout", "1s"))
	gotCopy := texts(copyMsgs)
	if !hasID(copyMsgs, mediaMsg) {
		t.Fatalf("restored mailbox lacks the media message: %v", gotCopy)
	}
	if !containsAll(gotCopy, append(append([]string{}, before...), wantLoad...)) {
		t.Fatalf("restored mailbox gave %v\nwant at least %v and %v", gotCopy, before, wantLoad)
	}
	seen := map[string]bool{}
	for _, m := range gotCopy {
		if seen[m] {
			t.Fatalf("restored mailbox gave %s twice: %v", m, gotCopy)
		}
		seen[m] = true
		if !all[m] && !strings.HasPrefix(m, "alice@localhost:") {
			t.Fatalf("restored mailbox gave %s, never sent", m)
		}
	}
	dst := filepath.Join(t.TempDir(), "photo.jpg")
	b0.must(t, "", "media", "get", mediaMsg, "--out", dst)
	if g, err := os.ReadFile(dst); err != nil || !bytes.Equal(g, file) {
		t.Fatalf("media from the restored server differs (%v)", err)
	}

	// Bob's device that had moved past the backup gets nothing twice, then
	// the messages sent after the restore, in both conversations.
	expectRecvQuick(t, b1)
	a1.must(t, "", "send", bobAddr, "after-restore")
	c1.must(t, "", "send", bobAddr, "carol-after-restore")
	expectRecvQuick(t, b1, "alice@localhost:after-restore", "carol@localhost:carol-after-restore")
	sameHistory(t, []*profile{b1}, []string{aliceAddr})
	sameHistory(t, []*profile{b1}, []string{"carol@localhost"})
	sameHistory(t, []*profile{b0}, []string{aliceAddr})
}

// checkRefused corrupts and truncates copies of archive: restore refuses
// each with a clear error and writes nothing.
func checkRefused(t *testing.T, archive string) {
	t.Helper()
	good, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"flipped":   flipped,
		"truncated": good[:len(good)*2/3],
		"empty":     nil,
	}
	for name, b := range cases {
		src := filepath.Join(root, name+".tar.gz")
		if err := os.WriteFile(src, b, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(root, name+"-dir")
		r := hearth(t, nil, "", "restore", "--dir", target, "--from", src)
		if r.code == 0 || !strings.Contains(r.stderr, "backup archive refused") {
			t.Fatalf("restore of a %s archive: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(target); err == nil {
			t.Fatalf("restore of a %s archive created %s", name, target)
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != len(cases) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("refused restores left files behind: %v", names)
	}
}

// expectRecvQuick is expectRecv with a 1 s quiet time: the server runs on
// this host, so what is waiting arrives at once.
func expectRecvQuick(t *testing.T, p *profile, want ...string) {
	t.Helper()
	msgs := parseMsgs(t, p.must(t, "", "recv", "--json", "--timeout", "1s"))
	if got := strings.Join(texts(msgs), " | "); got != strings.Join(want, " | ") {
		t.Fatalf("%s recv = %q, want %q", p.dir, got, strings.Join(want, " | "))
	}
}

func hasID(msgs []chatMsg, id string) bool {
	for _, m := range msgs {
		if m.ID == id {
			return true
		}
	}
	return false
}

func containsAll(have, want []string) bool {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

// copyTree copies the files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
