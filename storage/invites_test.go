package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func inviteHash(code string) []byte { h := sha256.Sum256([]byte(code)); return h[:] }

// TestConsumeInviteConcurrent: an invite with N uses pays for exactly N
// accounts however many registrations race for it, and a registration
// whose account cannot be created gives its use back.
func TestConsumeInviteConcurrent(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	const uses, tries = 5, 40
	inv := &Invite{CodeHash: inviteHash("CODE"), Prefix: "CODE", Uses: uses, ExpiresMs: 2000, CreatedMs: 1}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertInvite(inv) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	okN, unusable := 0, 0
	for n := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Write(ctx, func(tx *Tx) error {
				if _, err := tx.ConsumeInvite(inviteHash("CODE"), 1000); err != nil {
					return err
				}
				return tx.InsertUser(&User{Name: fmt.Sprintf("u%d", n), PassHash: "x", CreatedMs: 1})
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				okN++
			case errors.Is(err, ErrInviteUnusable):
				unusable++
			default:
				t.Errorf("register %d: %v", n, err)
			}
		}()
	}
	wg.Wait()
	if okN != uses || unusable != tries-uses {
		t.Fatalf("ok %d unusable %d, want %d and %d", okN, unusable, uses, tries-uses)
	}
	var users int
	var got *Invite
	if err := db.Read(ctx, func(tx *Tx) (err error) {
		if users, err = tx.CountUsers(); err != nil {
			return err
		}
		got, err = tx.InviteByHash(inviteHash("CODE"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if users != uses || got.UsesLeft != 0 {
		t.Fatalf("users %d uses_left %d, want %d and 0", users, got.UsesLeft, uses)
	}
}

// TestConsumeInviteRollback: a failed account creation (name taken) in
// the same Write leaves the use unconsumed.
func TestConsumeInviteRollback(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inv := &Invite{CodeHash: inviteHash("C2"), Prefix: "C2", Uses: 1, ExpiresMs: 2000, CreatedMs: 1}
	if err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.InsertUser(&User{Name: "taken", PassHash: "x", CreatedMs: 1}); err != nil {
			return err
		}
		return tx.InsertInvite(inv)
	}); err != nil {
		t.Fatal(err)
	}
	err := db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.ConsumeInvite(inviteHash("C2"), 1000); err != nil {
			return err
		}
		return tx.InsertUser(&User{Name: "taken", PassHash: "y", CreatedMs: 1})
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err %v, want ErrConflict", err)
	}
	var got *Invite
	if err := db.Read(ctx, func(tx *Tx) (err error) { got, err = tx.InviteByHash(inviteHash("C2")); return err }); err != nil {
		t.Fatal(err)
	}
	if got.UsesLeft != 1 {
		t.Fatalf("uses_left %d after failed registration, want 1", got.UsesLeft)
	}
}

// TestConsumeInviteStates: unknown, expired and revoked invites are refused.
func TestConsumeInviteStates(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inv := &Invite{CodeHash: inviteHash("C3"), Prefix: "C3", Uses: 3, ExpiresMs: 2000, CreatedMs: 1}
	consume := func(code string, now int64) (*Invite, error) {
		var i *Invite
		err := db.Write(ctx, func(tx *Tx) (err error) { i, err = tx.ConsumeInvite(inviteHash(code), now); return err })
		return i, err
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertInvite(inv) }); err != nil {
		t.Fatal(err)
	}
	if _, err := consume("nope", 1000); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown code: %v, want ErrNotFound", err)
	}
	if i, err := consume("C3", 2000); !errors.Is(err, ErrInviteUnusable) || i.ExpiresMs != 2000 {
		t.Fatalf("expired code: %v, want ErrInviteUnusable", err)
	}
	if i, err := consume("C3", 1999); err != nil || i.UsesLeft != 2 {
		t.Fatalf("valid code: %v (uses left %v), want ok with 2 left", err, i)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.RevokeInvite(inv.ID, 1500) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.RevokeInvite(inv.ID, 1500) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	if i, err := consume("C3", 1600); !errors.Is(err, ErrInviteUnusable) || i.RevokedMs != 1500 || i.UsesLeft != 2 {
		t.Fatalf("revoked code: %v %+v, want ErrInviteUnusable with 2 uses left", err, i)
	}
	var all []*Invite
	if err := db.Read(ctx, func(tx *Tx) (err error) { all, err = tx.Invites(); return err }); err != nil || len(all) != 1 {
		t.Fatalf("Invites: %v %d", err, len(all))
	}
}
