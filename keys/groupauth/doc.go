// Package groupauth is Hearth's group admin key rule (docs/decisions/0003):
// which roster changes of a group commit need the group admin's
// signature, the exact bytes that signature covers, and its check. The
// hub (homeserver) and every member's client apply the same rule to the
// same commit, so no fork can arise from role enforcement.
package groupauth
