// Package mediastore keeps media files: resumable uploads and ranged
// downloads of encrypted files
// (wire.UploadMedia, wire.DownloadMedia). The server never sees plaintext:
// clients encrypt with keys/media and put the key in the E2EE message.
//
// Bytes live in files under Config.Dir: partial/UPLOAD_ID while the
// upload runs, complete/MEDIA_ID once done. The amount received is the
// partial file's size (no database write per chunk). Completing fsyncs the
// file, renames it into complete/ and fsyncs that folder before the row is
// marked complete, so a complete row always has its bytes; the SHA-256 the
// server answers lets the uploader check that what is stored is what it
// sent (a crash may lose the unsynced tail of a partial file; the size
// then says where to resume).
//
// Complete media are deleted Config.Retention after they completed
// (the janitor; default 30 days), so a user's quota counts what the server
// still holds. A message that refers to an expired media still decrypts;
// fetching its file answers CODE_NOT_FOUND.
package mediastore
