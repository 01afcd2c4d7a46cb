// Package hub is the conversation hub's core: the rules by which a
// conversation's messages are accepted and ordered, as functions over one
// storage transaction. It knows nothing of sessions, transports or
// federation; callers run it inside the storage writer and act on its
// Result after the commit.
//
// # Accepting a Send (Hub.Accept, in one writer transaction)
//
//	dedup (sender device, message id)  -> a retry returns the first record
//	conversation and membership        -> CODE_NOT_FOUND, CODE_NOT_MEMBER
//	application / proposal             -> epoch window check, log append,
//	                                      one mailbox row per member device
//	commit (Hub.AcceptCommit)          -> exactly one per epoch
//	                                      (CODE_STALE_EPOCH otherwise), group
//	                                      admin rules (decision 0003), roster
//	                                      change, welcome to added devices,
//	                                      next epoch
//	dedup record
//
// AcceptCommit is the one place a commit is accepted: a verifier of the
// commit against the conversation's public MLS state belongs there.
//
// Conversations are created here (ValidateCreate, Create) with the
// creating device as the only member; Visible and OfUser describe them to
// their users' devices.
//
// # Following a remote hub (Hub.ApplyDeliver)
//
// A conversation hubbed elsewhere has a copy here: its log at the hub's
// sequence and the local devices on its roster. ApplyDeliver appends one
// message the hub accepted, in the hub's order, to the copy and to the
// mailboxes of the local recipients. AppendNotice puts a delivery-failed
// notice in a device's mailbox.
package hub
