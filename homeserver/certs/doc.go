// Package certs makes and renews the TLS certificates of a homeserver that
// runs without a public certificate authority.
//
// `hearth init` creates a development CA in the data folder (ca.pem, and
// ca.key readable by the owner only; ECDSA P-256, valid for ten years, named
// after the domain) and a leaf certificate for the server (leaf.pem: the
// leaf, the CA and the leaf's private key in one file, mode 0600). Clients
// trust the CA with `--ca DIR/ca.pem`.
//
// Leaves are ECDSA P-256 and valid for at most 14 days, so that browsers can
// also pin them with WebTransport's serverCertificateHashes. A Manager serves
// the leaf through tls.Config.GetCertificate and issues a new one by itself
// when less than a third of the lifetime remains; the new leaf is written to
// disk atomically (temporary file, fsync, rename) so a crash never leaves a
// half-written key.
//
// A server with a certificate from a public CA (kept current by an ACME
// client, say) uses a FileSource instead: it serves the operator's files
// and reloads them when they change.
package certs
