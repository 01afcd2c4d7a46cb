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
// # Completion and the database writer
//
// The database has one writer goroutine that commits every write of the
// server (storage.DB.Write). Completing an upload reads, hashes and fsyncs
// up to MaxBytes, so that file work runs in the request's goroutine before
// Write: the write transaction only flips the row to complete with the
// hash already computed. A slow disk then holds up that one upload, never
// another user's Send (TestCompletionOutsideWriter).
//
// The states of an upload, and what a request finds in each:
//
//   - Row incomplete, file in partial/: uploading. Received is the
//     partial file's size.
//   - Row incomplete, file in complete/: the server crashed, or the row
//     write failed, after the rename. Received is the complete file's
//     size (the whole upload); downloads answer CODE_NOT_FOUND. The
//     repeated final request hashes and fsyncs the file where it is and
//     writes the row; a non-final request with data is refused (it would
//     end past total_size).
//   - Row complete, file in complete/: done. A final request, or a status
//     request, answers the stored media id and SHA-256; data is refused.
//
// Every request on an upload holds the upload's own lock (Store.lock, a
// mutex in this process, not the writer) from reading the row until its
// row write has committed; the janitor holds it to delete an abandoned
// upload's row and to remove a deleted upload's files.
// Concurrent appends of one upload, and a final request racing another,
// therefore run one after the other: the second one reads the state the
// first one left (an offset that no longer matches, or a complete row).
// A row deleted without the lock (its user deleted) makes the row write
// answer CODE_NOT_FOUND; the janitor then removes the file through the
// row's gone record.
//
// # Uploads in parts
//
// An upload started with wire.UploadMedia.parts (parts.go) keeps its
// bytes in the folder partial/UPLOAD_ID, one file per part (PartSizeFor),
// so that a device may send the parts at once over several connections;
// each part's received is its file's size. The final request joins the
// parts into complete/MEDIA_ID (through partial/UPLOAD_ID.join, renamed),
// removes the folder, then completes as above: after a crash the folder
// is still there (joined again) or the complete file is (the folder is
// removed again), and the repeated final request finishes.
//
// Complete media are deleted Config.Retention after they completed
// (the janitor; default 30 days), so a user's quota counts what the server
// still holds. A message that refers to an expired media still decrypts;
// fetching its file answers CODE_NOT_FOUND.
package mediastore
