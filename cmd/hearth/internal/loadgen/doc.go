// Package loadgen is the load generator behind `hearth bench`: one process
// holding many real client devices (client.Client with its MLS engine and
// bbolt profile each) against a running homeserver, and the measurements
// taken while they work.
//
// # Pieces
//
//	Fleet      creates users (through the Users interface, which cmd/hearth
//	           implements with the admin socket), logs one device in per
//	           user, holds their clients; dials are retried with backoff,
//	           at most Config.DialConcurrency in flight, and counted
//	           (Report.DialRetries)
//	recorder   the receiving side: parses bench messages, counts delivered,
//	           duplicates and foreign messages, keeps send→receive latencies
//	sender     queues bench messages on a schedule (open loop, --rate),
//	           back to back (flat out: the next when the last was acked) or
//	           all at once (backlog: one Flush for all); counts acks
//	Pairs, Backlog, Idle, Group, Federation   the workloads
//	Report     every figure, printed as text or one JSON object
//
// # What is measured, and where
//
// A bench message's text is "hb1 RUN SENDER SEQ UNIXNANO" padded to the
// requested size; it travels MLS-encrypted like any other message. The
// timestamp is the time the message was scheduled (open loop: not when the
// client got round to queueing it), and latency is taken when the receiving
// client hands the decrypted message to its reader, so queueing in the
// sender, the server, delivery and the receiver's decryption and durable
// store are all inside it. Loss is counted per message: every sequence a
// sender saw acknowledged (SendOK) must arrive exactly once.
//
// Idle logs its users in, closes their sessions and reopens them at a
// bounded ramp (IdleParams.Ramp per second), so that it measures sessions
// held, not a reconnect herd. Report.Transports counts sessions per
// transport; cmd/hearth fails a run in which any is not on the transport
// asked for.
//
// # Wire mode
//
// With PairsParams.Wire (and the same field of Group, Backlog and Idle)
// the set-up is unchanged, then every device's client is closed and a bare
// client/session stream takes its place (wire.go): one real message per
// conversation is sealed by a client and captured as the receiver's
// session gets it; the senders replay that ciphertext with fresh message
// ids (wireID, pipelined: wiresend.go), and receivers acknowledge without
// decrypting and match arrivals by id (recorder.noteID). The server's CPU
// per message is then the server's alone, and the bench's is reported
// next to it (Report.CPUPerMessage).
//
// A group in wire mode is set up without its members' clients
// (groupwire.go): every member logs in (its client publishes its
// KeyPackages), all but the creator go wire at once, and the creator's
// client creates the group with all of them in its large commits; the
// members acknowledge their Welcome and the later commits unprocessed.
// The report then also gives the latencies from the server's acceptance
// of each message (Delivery.server_time_ms): per delivery and to the
// last member.
//
// Config.Stages reads the server's stage histograms (admin status,
// send_stages); the report gives each stage's latency over the measured
// interval (stages.go).
//
// Server CPU and RSS come from /proc/PID when the server's PID is known;
// the bench process's own CPU is reported next to it so that a reader can
// tell which side was the bottleneck.
package loadgen
