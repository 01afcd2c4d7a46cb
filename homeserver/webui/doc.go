// Package webui serves the Hearth web client: the page at / and its files
// under /web/ (the page's script and style, the Web Worker's script, the Go
// WebAssembly runtime's wasm_exec.js and the client itself, hearth.wasm).
// The files are embedded in the binary (static/).
//
// The page is plain HTML, CSS and a small script (app.js); the client core
// is the Go client library compiled to WebAssembly (hearth/client/webclient),
// run in a Web Worker (worker.js) so that the page never blocks. The page and
// the worker talk by postMessage (client/webclient/doc.go lists the
// messages).
//
// Every answer carries a Content-Security-Policy that allows scripts only
// from this origin (no inline script, no eval; 'wasm-unsafe-eval' lets the
// worker compile the WebAssembly), connections only to this origin
// (WebTransport to /hearth/v1, the WebSocket to /hearth/v1/ws), and no
// framing.
//
// Certificates (certs.go, decision 0012): /web/certificates.json tells the
// worker the SHA-256 of the leaf served now when the server runs on its
// development CA (for WebTransport's serverCertificateHashes), and
// /web/ca.html (no script) explains how to trust that CA, whose
// certificate is at /web/ca.pem; the page links to it. With a public
// certificate the list is empty and the CA page and file do not exist. Files are revalidated with
// their ETag (a hash of their content) on every load, so a new build is
// picked up at once and an unchanged one costs a 304.
//
// hearth.wasm is stored brotli-compressed (static/hearth.wasm.br, about
// 2.3 MB for 13 MB) and sent as it is to browsers that accept br (all
// current ones over HTTPS); others get it gzip-compressed or plain,
// decompressed once on first need. The build: `go generate ./homeserver/webui`
// (internal/gen); TestBuildUpToDate fails when the committed build is
// older than its inputs (docs/decisions/0011-web-client-build.md).
package webui

//go:generate go run ./internal/gen
