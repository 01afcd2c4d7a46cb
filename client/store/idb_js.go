//go:build js

package store

import (
	"errors"
	"fmt"
	"syscall/js"
	"time"
)

// idb is one IndexedDB database holding a profile's records in the object
// store FileName, keyed as memkv.go describes.
type idb struct {
	db      js.Value
	timeout time.Duration
}

type idbRecord struct {
	key string
	val []byte
}

// await waits for the request or transaction v to fire one of the events
// in ok (success) or "error"/"abort", for up to timeout. The caller must
// not run in a JavaScript callback (the event loop must keep running).
func await(v js.Value, timeout time.Duration, ok ...string) error {
	done := make(chan error, 1)
	var fns []js.Func
	for _, ev := range ok {
		f := js.FuncOf(func(js.Value, []js.Value) any {
			select {
			case done <- nil:
			default:
			}
			return nil
		})
		v.Set("on"+ev, f)
		fns = append(fns, f)
	}
	for _, ev := range []string{"error", "abort", "blocked"} {
		ev := ev
		f := js.FuncOf(func(js.Value, []js.Value) any {
			msg := ev
			if e := v.Get("error"); e.Truthy() {
				msg += ": " + e.Get("message").String()
			}
			select {
			case done <- errors.New(msg):
			default:
			}
			return nil
		})
		v.Set("on"+ev, f)
		fns = append(fns, f)
	}
	defer func() {
		for _, f := range fns {
			f.Release()
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer from IndexedDB within %v", timeout)
	}
}

// openIDB opens (creating if needed) the database name and reads all its records.
func openIDB(name string, timeout time.Duration) (*idb, []idbRecord, error) {
	factory := js.Global().Get("indexedDB")
	if !factory.Truthy() {
		return nil, nil, errors.New("store: this browser has no IndexedDB (a private window may disable it)")
	}
	var req js.Value
	if err := jsTry(func() { req = factory.Call("open", name, 1) }); err != nil {
		return nil, nil, fmt.Errorf("store: open IndexedDB %q: %w", name, err)
	}
	upgrade := js.FuncOf(func(js.Value, []js.Value) any {
		db := req.Get("result")
		if !db.Get("objectStoreNames").Call("contains", FileName).Bool() {
			db.Call("createObjectStore", FileName)
		}
		return nil
	})
	req.Set("onupgradeneeded", upgrade)
	err := await(req, timeout, "success")
	upgrade.Release()
	if err != nil {
		return nil, nil, fmt.Errorf("store: open IndexedDB %q: %w", name, err)
	}
	d := &idb{db: req.Get("result"), timeout: timeout}
	var tx, keysReq, valsReq js.Value
	if err := jsTry(func() {
		tx = d.db.Call("transaction", FileName, "readonly")
		os := tx.Call("objectStore", FileName)
		keysReq = os.Call("getAllKeys")
		valsReq = os.Call("getAll")
	}); err != nil {
		return nil, nil, fmt.Errorf("store: read IndexedDB %q: %w", name, err)
	}
	if err := await(tx, timeout, "complete"); err != nil {
		return nil, nil, fmt.Errorf("store: read IndexedDB %q: %w", name, err)
	}
	keys, vals := keysReq.Get("result"), valsReq.Get("result")
	n := keys.Length()
	if vals.Length() != n {
		return nil, nil, fmt.Errorf("store: read IndexedDB %q: %d keys but %d values", name, n, vals.Length())
	}
	recs := make([]idbRecord, n)
	for i := range n {
		k := keys.Index(i)
		v := vals.Index(i)
		if k.Type() != js.TypeString || !v.InstanceOf(js.Global().Get("Uint8Array")) {
			return nil, nil, fmt.Errorf("store: IndexedDB %q holds a record that is not the store's", name)
		}
		b := make([]byte, v.Length())
		js.CopyBytesToGo(b, v)
		recs[i] = idbRecord{key: k.String(), val: b}
	}
	return d, recs, nil
}

// jsTry runs fn, turning a JavaScript exception (which syscall/js raises
// as a panic: a closed database, a store that is gone) into an error.
func jsTry(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	fn()
	return nil
}

// write applies ops in one readwrite transaction with strict durability
// (flushed to disk before it completes) and waits for it to complete.
func (d *idb) write(ops []kvOp) error {
	var tx js.Value
	if err := jsTry(func() { tx = d.request(ops) }); err != nil {
		return fmt.Errorf("write IndexedDB: %w", err)
	}
	if err := await(tx, d.timeout, "complete"); err != nil {
		return fmt.Errorf("write IndexedDB: %w", err)
	}
	return nil
}

// request starts the transaction that applies ops; an exception aborts it.
func (d *idb) request(ops []kvOp) js.Value {
	opts := js.Global().Get("Object").New()
	opts.Set("durability", "strict")
	tx := d.db.Call("transaction", FileName, "readwrite", opts)
	defer func() {
		if r := recover(); r != nil {
			jsTry(func() { tx.Call("abort") }) // none of the changes, not some
			panic(r)
		}
	}()
	os := tx.Call("objectStore", FileName)
	keyRange := js.Global().Get("IDBKeyRange")
	for _, op := range ops {
		switch {
		case op.Prefix:
			os.Call("delete", keyRange.Call("bound", op.Key, op.Key+"\uffff", false, true))
		case op.Del:
			os.Call("delete", op.Key)
		default:
			v := js.Global().Get("Uint8Array").New(len(op.Val))
			js.CopyBytesToJS(v, op.Val)
			os.Call("put", v, op.Key)
		}
	}
	return tx
}

// wipe closes and deletes the database name.
func (d *idb) wipe(name string) error {
	var req js.Value
	if err := jsTry(func() {
		d.db.Call("close")
		req = js.Global().Get("indexedDB").Call("deleteDatabase", name)
	}); err != nil {
		return fmt.Errorf("store: delete IndexedDB %q: %w", name, err)
	}
	if err := await(req, d.timeout, "success"); err != nil {
		return fmt.Errorf("store: delete IndexedDB %q: %w", name, err)
	}
	return nil
}
