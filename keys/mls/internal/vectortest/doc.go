// Package vectortest loads the IETF MLS test vectors kept in
// keys/mls/testdata and counts their cases, for the tests of keys/mls and
// its subpackages. Only _test.go files import it.
package vectortest
