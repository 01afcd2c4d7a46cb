// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for
// tests: on 127.0.0.1, with a certificate for its own HTTPS made on the
// spot, and with a small DNS server (DNS) so that Pebble's validation of
// test domains resolves them to loopback without touching real DNS. Only
// _test.go files import it.
package pebbletest
