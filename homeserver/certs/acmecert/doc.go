// Package acmecert obtains and renews a homeserver's TLS certificate from an
// ACME certificate authority (RFC 8555: Let's Encrypt, or any other CA with
// an ACME directory such as Pebble in tests).
//
// A Manager keeps, in its folder (DIR/acme of the data folder):
//
//   - account.key: the ACME account's ECDSA P-256 key (PEM, 0600), made on
//     first use; the account is registered (or found again) with it;
//   - cert.pem: the certificate chain followed by its private key (0600),
//     replaced atomically after each issuance.
//
// The certificate is served through tls.Config.GetCertificate, the same one
// on QUIC and on TCP. Domain validation uses the TLS-ALPN-01 challenge
// (RFC 8737): the CA connects to port 443 of the domain over TCP, offering
// only the "acme-tls/1" protocol, and GetConfigForClient answers it with the
// challenge certificate, so no other port is opened. Run obtains a
// certificate when there is none and renews it once two thirds of its
// lifetime have passed; the new certificate is swapped in without a
// restart (handshakes after the swap get it; open connections keep theirs).
// A failed issuance is retried with a doubling delay (shortened to a
// quarter of the served certificate's remaining life) while the old
// certificate, if any, keeps being served.
package acmecert
