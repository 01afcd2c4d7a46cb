// Package keys holds Hearth's cryptography: typed identity keys, signing,
// signed device lists, MLS (RFC 9420, in keys/mls) and media encryption.
//
// It imports only the standard library and golang.org/x/crypto: no
// networking and no storage (deps_test.go enforces this), so every
// operation is a pure function of its inputs and can be tested alone.
package keys
