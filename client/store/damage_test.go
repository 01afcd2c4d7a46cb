//go:build !js

package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// filledStore is a closed store in a new folder holding an account and
// enough history to span many pages.
func filledStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir)
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutAccount(Account{User: "alice@a.example", DeviceID: "D1", Server: "127.0.0.1:1", Active: true}); err != nil {
			return err
		}
		for i := range 200 {
			if err := tx.PutGroup(fmt.Sprintf("c%d@a.example", i), bytes.Repeat([]byte{byte(i)}, 700)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// garble overwrites the file's bytes from off on with random ones.
func garble(t *testing.T, path string, off int64, seed uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	for i := off; i < int64(len(b)); i++ {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every record the way commands do, through Store.
func readAll(dir string) error {
	s, err := Open(dir, time.Second)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.View(func(tx *Tx) error {
		if _, err := tx.Account(); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		for i := range 200 {
			tx.Group(fmt.Sprintf("c%d@a.example", i))
		}
		return nil
	})
}

// TestDamagedStore: a truncated or garbled profile file gives an error
// wrapping ErrDamaged that names the file (never a panic or a fault), Check
// says the same, and Repair moves the file aside (keeping it) so that the
// profile opens again, empty; a sound store passes Check and Repair leaves
// it alone.
func TestDamagedStore(t *testing.T) {
	sound := filledStore(t)
	rep, err := Check(sound)
	if err != nil || rep.User != "alice@a.example" || rep.Device != "D1" || rep.Keys < 200 {
		t.Fatalf("Check of a sound store = %+v, %v", rep, err)
	}
	if res, err := Repair(sound, time.Now()); err != nil || res.MovedTo != "" {
		t.Fatalf("Repair of a sound store = %+v, %v", res, err)
	}
	if err := readAll(sound); err != nil {
		t.Fatalf("sound store after Repair: %v", err)
	}

	damage := map[string]func(t *testing.T, path string){
		"truncated":     func(t *testing.T, path string) { os.Truncate(path, 1000) },
		"all garbage":   func(t *testing.T, path string) { garble(t, path, 0, 1) },
		"pages garbage": func(t *testing.T, path string) { garble(t, path, 3*4096, 2) },
		"tail garbage":  func(t *testing.T, path string) { garble(t, path, 20*4096, 3) },
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			dir := filledStore(t)
			path := filepath.Join(dir, FileName)
			hurt(t, path)
			err := readAll(dir)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("reading a damaged store: %v, want ErrDamaged", err)
			}
			if p, ok := DamagedFile(err); !ok || p != path {
				t.Errorf("error names %q, want %q", p, path)
			}
			if _, err := Check(dir); !errors.Is(err, ErrDamaged) {
				t.Errorf("Check: %v, want ErrDamaged", err)
			}
			res, err := Repair(dir, time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if want := path + ".damaged-20261206T010203Z"; res.MovedTo != want {
				t.Errorf("moved to %q, want %q", res.MovedTo, want)
			}
			if _, err := os.Stat(res.MovedTo); err != nil {
				t.Errorf("damaged file not kept: %v", err)
			}
			if err := readAll(dir); err != nil {
				t.Fatalf("store after Repair: %v", err)
			}
			if _, err := Check(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Check after Repair: %v", err)
			}
		})
	}
}

// TestDamagedStoreEachPage garbles each page of a store in turn: reading it
// either works (a page nothing uses) or fails with ErrDamaged, never with a
// panic or fault, and after Repair the profile reads again (a copy of
// every record when all were readable, else empty).
func TestDamagedStoreEachPage(t *testing.T) {
	src := filepath.Join(filledStore(t), FileName)
	sound, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	damaged, copied := 0, 0
	for p := 2; p < len(sound)/page; p++ {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		b := bytes.Clone(sound)
		r := rand.New(rand.NewPCG(uint64(p), 7))
		for i := p * page; i < (p+1)*page; i++ {
			b[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readAll(dir)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("page %d garbled: %v, want ErrDamaged", p, err)
		}
		damaged++
		res, err := Repair(dir, time.Now())
		if err != nil {
			t.Fatalf("page %d: Repair: %v", p, err)
		}
		if res.Copied {
			copied++
		}
		if err := readAll(dir); err != nil {
			t.Fatalf("page %d: after Repair (%+v): %v", p, res, err)
		}
	}
	if damaged == 0 {
		t.Fatal("no garbled page was noticed")
	}
	t.Logf("%d pages, %d garbled ones noticed, %d of those repaired by copying", len(sound)/page, damaged, copied)
}
