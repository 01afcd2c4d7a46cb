// Package storage owns the homeserver's SQLite database: schema, embedded
// migrations and queries. The database runs in WAL mode with
// synchronous=FULL; one writer goroutine groups concurrent writes into one
// transaction (group commit) while a pool of read connections serves reads.
package storage
