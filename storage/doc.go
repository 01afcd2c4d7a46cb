// Package storage owns the homeserver's SQLite database: schema, embedded
// migrations and queries.
//
// Durability: every connection runs in WAL mode with synchronous=FULL,
// foreign keys on and a busy timeout. Open applies the embedded migrations
// (migrations/NNNN_*.sql) in order, each in one transaction with its
// schema_migrations row, so reopening is idempotent. No connection
// checkpoints the WAL in its COMMIT: a checkpointer goroutine on a
// connection of its own does, beside the writer, and the writer rewinds
// the WAL once it has caught up (checkpoint.go, decision 0016).
//
// Writes: one goroutine owns the only write connection. DB.Write hands it
// a function; the writer takes every request waiting (up to
// Options.MaxBatch), runs them in one IMMEDIATE transaction, each inside
// its own SAVEPOINT (a failing request rolls back only itself), commits
// once and only then answers every caller. Many concurrent senders thus
// share one fsync (group commit) without giving up synchronous=FULL, and
// "database is locked" cannot happen between our own writers. A request
// that fails rolls back its savepoint only; a failure of the transaction
// itself (BEGIN, savepoint bookkeeping, COMMIT) fails every request in it,
// so no caller is ever told "done" for a write that did not commit.
// After a transaction that carried more than one request, the writer
// waits up to Options.CommitDelay (500µs) for more before it begins the
// next, so that under load one fsync serves more requests; a lone caller
// writing one request at a time never waits.
//
// Acks (DB.SubmitAck) are requests of their own kind: no savepoint each,
// all acks of a transaction in one multi-row UPDATE after its other
// requests (per device the highest), and a transaction of acks alone
// waits up to Options.AckDelay (5ms) for another request to share its
// commit (acks.go). Mailbox rows that Tx.FanOut computes from the heads
// it moved, and log entries queued with Tx.QueueLog, wait in the writer
// (pending.go) and go in with the rest of the transaction's in a few
// multi-row INSERTs: before any statement that could see the mailbox or
// the log without them, before a nested Tx.Savepoint and at the end of
// the batch; a request's rollback keeps the rows of the requests before
// it. DB.WriteStatements counts the writer's statements.
//
// Send views (sendview.go): the writer keeps, across its transactions,
// what Tx.ConversationForSend returns per conversation (the row, the
// roster, the latest add, the mailbox heads of the devices here), so a
// Send to a conversation seen before reads nothing. Queued advances and
// FanOutTo keep it current; any other statement that might change it
// (anything outside a fixed list), a request's rollback and a failed
// transaction empty it. FanOutTo moves a head only where it still has the
// value it was given (ErrStaleHeads otherwise).
//
// Dedup records (sendrecords.go, decisions 0020 and 0023): appended in id
// order under a unique 63-bit key of (sender, message id); a claim of a
// new pair is one INSERT that finds the key free, and a pair whose key
// another pair's record holds (a hash collision) waits in a spill table
// until retention frees the key. A conversation's GroupInfo lives in a
// table of its own (decision 0024), so that the row every Send advances
// stays narrow.
//
// Reads: DB.Read runs a function in a read-only (query_only) transaction on
// a separate pool of connections, a consistent WAL snapshot that never
// waits for the writer.
//
// Prepared statements: the hot-path queries are prepared at Open; every
// other query is prepared inside the first transaction that runs it and,
// once that transaction has ended, prepared on its pool and cached
// (stmtcache.go). A cached statement is bound to each connection at most
// once and kept for the connection's life, so no query pays
// sqlite3_prepare per transaction.
//
// Backups: DB.Snapshot copies the live database with SQLite's online
// backup API inside one read transaction of a connection of its own (a
// consistent copy; the writer is never blocked), and lists the media the
// copy refers to. A restored copy is prepared with
// Tx.SkipRestoredSequences and Tx.DropSingleUseKeyPackages (restore.go).
// Monitoring: Options.Observer sees every committed batch; Tx.Figures
// totals the mailbox backlog, federation queue and media.
//
// The queries are methods of Tx and use storage's own types; storage does
// not know the wire protocol. Errors wrap ErrNotFound / ErrConflict for
// callers to map.
package storage
