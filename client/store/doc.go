// Package store is the Hearth client's local store: one bbolt file in the
// profile folder, holding everything a device must remember across runs.
// In the browser (GOOS=js, the web client) the same records live in
// IndexedDB instead: store_js.go keeps them in the in-memory tree of
// memkv.go, which behaves as bbolt does, and writes each Update's changes
// in one IndexedDB transaction before Update returns. The record code
// (records.go, history.go, outbox.go, trees.go, crypt.go) is shared; the
// sections below on files and processes are about bbolt.
//
// One test suite, two stores: the record tests (store_test.go,
// outbox_test.go, trees_test.go, crypt*_test.go) run on bbolt, and again
// with GOOS=js in Node.js on the browser's store, IndexedDB there being a
// Go fake (store_js_test.go); TestStoreSuiteOnBrowserStore runs that
// second pass. Tests of bbolt's file and of several processes on one
// profile are native only. TestMemKVMatchesBolt compares the two trees
// operation by operation.
//
// Buckets:
//
//	account  the device's login: user, device id, server address, CA path, tokens
//	keys     secret key material by name (identity seed, MLS signature key,
//	         link key) and KeyPackage private keys by reference
//	conversations  per conversation, one key range (convs.go): its history
//	         messages keyed by conversation sequence, then its serialized
//	         MLS state (opaque bytes), so that a message's commit rewrites
//	         one leaf page for both
//	group-trees  per conversation (a nested bucket), the ratchet trees a
//	         split state refers to, by reference: written once, deleted when
//	         the conversation's next saved state no longer names them (a save naming the
//	         trees the bucket holds skips it: treesmemo.go)
//	outbox   unsent messages in send order, indexed by message id
//	mailbox  the last processed mailbox sequence (alone: a bucket that
//	         small is kept inside the root page)
//	sync     small client metadata
//	inbox    received messages not yet printed by `hearth chat recv`
//	crypt    the key derivation record of an encrypted profile
//
// A profile of the earlier layout (buckets groups and history, the
// mailbox sequence in sync) is moved to this one when it is opened
// (layout.go, decision 0022).
//
// # Records
//
// The records written for every message (outbox items, history and inbox
// messages) are stored in a compact binary form (binrec.go) that starts
// with a marker byte no JSON text starts with; the others are JSON.
// Records written as JSON by earlier versions read as before and are
// rewritten in binary when next written. The decoded account and this
// device's signature key are kept in memory between transactions
// (reccache.go), tied to bbolt's transaction ids so that a transaction
// never sees a record another snapshot decoded, and dropped when the file
// is opened again (another process may have written them) and when a
// write fails.
//
// # Encryption at rest
//
// A profile opened with a passphrase (OpenWith, Options.Passphrase) has
// every record value of the buckets above sealed with XChaCha20-Poly1305
// under a key derived with argon2id (crypt.go); bucket names and record
// keys stay readable (docs/security.md lists what that shows). Without a
// passphrase values are stored as they are. Encrypt converts a profile and
// Compact rewrites the file so no deleted or replaced value stays in its
// free pages.
//
// Every write is one bbolt transaction, which fsyncs before it returns.
// Callers commit a state change before they send or acknowledge anything
// that depends on it, so a crash at any point leaves a state from which the
// client resumes: at worst a message is sent again under the same message id
// (the server deduplicates) or a delivery is pushed again after an ack was
// lost (Apply skips mailbox sequences already processed).
//
// Update runs several changes in one transaction (for example a new group
// state, an encrypted outbox entry and a history entry), so they become
// durable together or not at all.
//
// Later puts off a write whose loss in a crash is harmless because it is
// redone (moving a sent message to history: the message is sent again
// under its id; removing printed inbox entries: they are printed again)
// to the next Update, which commits it with its own changes: no fsync of
// its own. View commits what is put off before it reads; Peek reads
// without it, for readers that know what they put off. Close writes it.
// Commits counts the committed transactions (benchmarks: fsyncs per
// message).
//
// # One profile, several processes
//
// bbolt lets one process at a time open a file for writing (an exclusive
// flock), and opening is expensive (mmap, page checks; munmap on close).
// A Store therefore keeps the file open while its process's transactions
// keep coming and shares it with other processes (`hearth chat recv
// --follow` running while `hearth chat send` runs) this way:
//
//   - A Store that needs the file tries to lock it every 2 ms (one flock
//     attempt each) and, while that fails, touches hearth.db.want next to
//     it.
//   - The process holding the file looks for a fresh want file (< 1 s old)
//     when one of its transactions ends (at most every 20 ms) and, while
//     none runs, every 50 ms.
//     If there is one it closes the file as soon as none of its
//     transactions runs, and waits 15 ms before opening it again, which
//     gives the waiting process its turn even when the holder is never
//     idle. The process that got the file removes the want file; processes
//     still waiting touch it again. So a waiter gets the file within about
//     50 ms of the holder's last transaction, or within 20 ms and one
//     transaction of a busy holder.
//     On Linux a look is not a stat each time: one inotify watch per
//     process and profile folder counts the changes of the want file, and
//     the file is looked at again only after one (want_linux.go), which
//     answers as a stat would.
//   - Without a want file, the file is closed after IdleRelease (500 ms)
//     without a transaction (for tools that do not know the want file).
//   - A Store waits at most its Open timeout for the file and then fails
//     with a "stayed busy in another process" error.
//
// Whoever holds the lock has the only writer, and bbolt reads the current
// meta page when the file is opened, so every transaction sees what the
// last one of any process committed. Tests: TestBusyStoreGivesWay,
// TestStoresInterleave, TestProcessesShareAProfile (real processes).
package store
