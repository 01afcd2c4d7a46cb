package storage

import (
	"context"
	"errors"
	"testing"
)

// TestAuditLogAndRole: audit entries come back newest first and limited;
// a bad via is refused by the schema and writes nothing; the role flips.
func TestAuditLogAndRole(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	for i, e := range []*AuditEntry{
		{AtMs: 1, Via: "socket", Actor: "local", Action: "POST /v1/users", Target: "name=a", Status: 201},
		{AtMs: 2, Via: "rest", Actor: "a@x.example/D", Remote: "127.0.0.1:5", Action: "GET /v1/users", Status: 403, Code: "CODE_FORBIDDEN"},
		{AtMs: 3, Via: "socket", Actor: "local", Action: "PUT /v1/users/{name}/role", Target: "name=a role=admin", Status: 204},
	} {
		if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertAudit(e) }); err != nil || e.ID != int64(i+1) {
			t.Fatalf("InsertAudit %d: id %d, %v", i, e.ID, err)
		}
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertAudit(&AuditEntry{AtMs: 4, Via: "smoke", Action: "x"}) }); err == nil {
		t.Error("an entry with an unknown via was stored")
	}
	var es []*AuditEntry
	if err := db.Read(ctx, func(tx *Tx) (err error) { es, err = tx.AuditEntries(2); return err }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].AtMs != 3 || es[1].AtMs != 2 || es[1].Remote != "127.0.0.1:5" || es[1].Code != "CODE_FORBIDDEN" || es[0].Target != "name=a role=admin" {
		t.Fatalf("AuditEntries(2): %+v %+v", es[0], es[1])
	}

	u := &User{Name: "a", PassHash: "x", CreatedMs: 1}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertUser(u) }); err != nil {
		t.Fatal(err)
	}
	for _, admin := range []bool{true, false} {
		if err := db.Write(ctx, func(tx *Tx) error { return tx.SetUserAdmin(u.ID, admin) }); err != nil {
			t.Fatal(err)
		}
		var got *User
		if err := db.Read(ctx, func(tx *Tx) (err error) { got, err = tx.UserByID(u.ID); return err }); err != nil || got.Admin != admin {
			t.Errorf("after SetUserAdmin(%v): %+v, %v", admin, got, err)
		}
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.SetUserAdmin(u.ID+100, true) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetUserAdmin of no user: %v", err)
	}
}
