// Package transfer moves one device's encrypted media (file attachments)
// to and from its homeserver: chunked encryption into a ciphertext file
// in the profile folder, an upload that resumes across reconnects and
// across runs (the record of an unfinished upload is kept in the store),
// and a download checked against the message's SHA-256 before anything
// is decrypted. A file of Config.ParallelMin bytes or more moves over
// several connections of the device at once (parallel.go: uploads in
// parts, downloads in ranges written in order), each with its own
// congestion window, which is what keeps a useful throughput on a lossy
// link. It knows nothing of conversations: the client queues the message
// that refers to an upload.
package transfer
