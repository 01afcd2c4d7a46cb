// Package testutil holds helpers shared by the tests of every Hearth
// package; only _test.go files import it, so it never reaches the binary.
//
// It lives under keys/ because the top-level folders are fixed and keys/
// is the one tree that every package may import (deps_test.go). Like the
// rest of keys/ it imports only the standard library.
//
// WaitFor replaces sleeping to synchronise: a test waits for the condition
// it needs, up to a generous timeout, instead of guessing how long that
// takes on a loaded machine.
package testutil
