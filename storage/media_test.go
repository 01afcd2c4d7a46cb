package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestMediaLifecycle: an upload is found by upload id while incomplete but
// not by media id; completing it makes it downloadable once; stale
// incomplete uploads are listed and deleted, complete ones never.
func TestMediaLifecycle(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	u := &User{Name: "ann", PassHash: "x", CreatedMs: 1}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Write(ctx, func(tx *Tx) error { return tx.InsertUser(u) }))
	a := &Media{UploadID: "up-a", MediaID: "m-a", UserID: u.ID, DeviceID: "D1", TotalSize: 100, CreatedMs: 10}
	b := &Media{UploadID: "up-b", MediaID: "m-b", UserID: u.ID, DeviceID: "D1", TotalSize: 50, CreatedMs: 20}
	must(db.Write(ctx, func(tx *Tx) error { return errors.Join(tx.InsertMedia(a), tx.InsertMedia(b)) }))
	dup := &Media{UploadID: "up-c", MediaID: "m-a", UserID: u.ID, DeviceID: "D1", TotalSize: 1, CreatedMs: 1}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.InsertMedia(dup) }); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate media id: %v", err)
	}
	if err := db.Write(ctx, func(tx *Tx) error {
		return tx.InsertMedia(&Media{UploadID: "x", MediaID: "y", UserID: u.ID, DeviceID: "D1"})
	}); err == nil {
		t.Fatal("zero size accepted")
	}
	must(db.Read(ctx, func(tx *Tx) error {
		if _, err := tx.CompleteMediaByID("m-a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("incomplete media found by media id: %v", err)
		}
		n, err := tx.OpenMediaUploads("D1")
		if n != 2 || err != nil {
			t.Fatalf("open uploads %d, %v", n, err)
		}
		sum, err := tx.MediaBytes(u.ID)
		if sum != 150 || err != nil {
			t.Fatalf("media bytes %d, %v", sum, err)
		}
		return nil
	}))
	sha := bytes.Repeat([]byte{9}, 32)
	must(db.Write(ctx, func(tx *Tx) error { return tx.CompleteMedia("up-a", sha, 30) }))
	if err := db.Write(ctx, func(tx *Tx) error { return tx.CompleteMedia("up-a", sha, 31) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("completed twice: %v", err)
	}
	must(db.Read(ctx, func(tx *Tx) error {
		m, err := tx.CompleteMediaByID("m-a")
		if err != nil || !m.Complete() || !bytes.Equal(m.SHA256, sha) || m.TotalSize != 100 || m.UploadID != "up-a" {
			t.Fatalf("complete media: %+v, %v", m, err)
		}
		stale, err := tx.StaleMediaUploads(1000, 10)
		if err != nil || len(stale) != 1 || stale[0].UploadID != "up-b" {
			t.Fatalf("stale uploads: %v, %v", stale, err)
		}
		return nil
	}))
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteIncompleteMedia("up-a") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("complete upload deleted as incomplete: %v", err)
	}
	must(db.Write(ctx, func(tx *Tx) error { return tx.DeleteIncompleteMedia("up-b") }))
	must(db.Read(ctx, func(tx *Tx) error {
		if _, err := tx.MediaUpload("up-b"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted upload still there: %v", err)
		}
		_, err := tx.MediaUpload("up-a")
		return err
	}))
}

// TestGoneMedia: deleting an upload, directly or by deleting its user,
// records it for the janitor, which forgets it once the files are gone.
func TestGoneMedia(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	u := &User{Name: "ann", PassHash: "x", CreatedMs: 1}
	if err := db.Write(ctx, func(tx *Tx) error {
		if err := tx.InsertUser(u); err != nil {
			return err
		}
		for _, id := range []string{"a", "b"} {
			if err := tx.InsertMedia(&Media{UploadID: "up-" + id, MediaID: "m-" + id, UserID: u.ID, DeviceID: "D", TotalSize: 1, CreatedMs: 1}); err != nil {
				return err
			}
		}
		return tx.CompleteMedia("up-b", make([]byte, 32), 2)
	}); err != nil {
		t.Fatal(err)
	}
	gone := func() []Media {
		var g []Media
		if err := db.Read(ctx, func(tx *Tx) (err error) { g, err = tx.GoneMedia(10); return }); err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := gone(); len(g) != 0 {
		t.Fatalf("gone before any delete: %v", g)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteIncompleteMedia("up-a") }); err != nil {
		t.Fatal(err)
	}
	if g := gone(); len(g) != 1 || g[0].UploadID != "up-a" || g[0].MediaID != "m-a" {
		t.Fatalf("after deleting an upload: %v", g)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return tx.DeleteUser(u.ID) }); err != nil {
		t.Fatal(err)
	}
	if g := gone(); len(g) != 2 || g[1].MediaID != "m-b" {
		t.Fatalf("after deleting the user (cascade): %v", g)
	}
	if err := db.Write(ctx, func(tx *Tx) error { return errors.Join(tx.ForgetGoneMedia("up-a"), tx.ForgetGoneMedia("up-b")) }); err != nil {
		t.Fatal(err)
	}
	if g := gone(); len(g) != 0 {
		t.Fatalf("after forgetting: %v", g)
	}
}
