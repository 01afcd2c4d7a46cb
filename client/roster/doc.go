// Package roster keeps each conversation's MLS roster in line with its
// users' signed device lists: Reconcile adds the devices a user listed
// since and removes the ones no longer listed, in one commit the hub must
// accept; commits are recorded pending before they are sent (PendCommit)
// and merged or dropped by the hub's answer (FinishCommit). It claims
// KeyPackages for added devices and remembers when each roster was last
// checked, so that a send does not fetch every member's list each time.
package roster
