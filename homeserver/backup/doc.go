// Package backup takes consistent backups of a running homeserver and
// restores them into a new data folder.
//
// A backup is one archive: a tar stream (gzipped or not) whose entries
// are the files of the data folder, relative to it, with the database
// replaced by an online copy (storage.DB.Snapshot) and the media limited
// to those complete in that copy. Its last entry, MANIFEST.json, lists
// every file with its size, mode and SHA-256, and says when the copy
// began. Verify reads an archive to its end and refuses it (an
// *ArchiveError) when an entry is missing, extra, truncated, has a wrong
// checksum or an unsafe path, or the manifest is absent.
//
// Maker.Begin takes the database copy while the server serves (one read
// transaction on a connection of its own; the writer is never blocked)
// and holds media files from removal until Snapshot.Close, so every
// media the copy refers to is in the archive; media completed after the
// copy began are not (their rows are not in it either).
//
// Restore verifies every checksum first, then extracts into a private
// folder beside the target, verifying again, and renames it into place:
// a refused archive leaves nothing behind.
package backup
