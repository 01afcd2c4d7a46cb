// Package directory is this device's view of the key directory: it
// fetches users' signed device lists from the homeserver (one at a time,
// or many in one FetchDeviceLists), verifies each with the user's identity
// key pinned on first use, refuses an older list or a changed key, and
// keeps the pins in the profile store. Its validators accept an MLS member
// only when its device is on its user's validly signed list.
package directory
