// Package delivery pushes each device's mailbox to its sessions, in
// sequence order, within a window of unacknowledged entries, and carries
// "new entries for device X" from the committing transaction to those
// sessions through a Router (LocalRouter in process; the scale-out seam of
// DESIGN.md).
//
// # Flow
//
//	Sync{after_seq}   session: NewPusher (subscribed first), SyncOK, Start
//	commit of a Send  Engine.HandCommitted -> Router.NotifyEntry per recipient
//	                  -> Pusher: a caught-up pusher pushes the handed entry
//	                     without a read; one that is behind (gap, full
//	                     window, over MaxHandoffs or MaxHandoffBytes, a new
//	                     Sync) reads the mailbox (handoff.go)
//	Ack{up_to_seq}    session: durable ack, then Pusher.Ack moves the window
//
// A Pusher runs on a goroutine only while there is something to push; an
// idle session holds none. Queue runs a session's replies and lossy pushes
// the same way.
//
// # Locks
//
// Pusher.mu and Queue.mu are leaves. LocalRouter.mu is taken before
// Pusher.mu (Notify calls the pushers' kick under it; a pusher
// unsubscribes only after releasing its own lock).
package delivery
