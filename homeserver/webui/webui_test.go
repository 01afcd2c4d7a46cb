package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"hearth/homeserver/webui/internal/wasmbuild"
)

// maxCompressed is issue 15's bound on the WebAssembly's download.
const maxCompressed = 3 << 20

// TestBuildUpToDate: the committed WebAssembly was built from the code as
// it is (the digest of its inputs matches), its compressed size is under
// 3 MB, and build.json describes the embedded file.
func TestBuildUpToDate(t *testing.T) {
	b, err := EmbeddedBuild()
	if err != nil {
		t.Fatal(err)
	}
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := wasmbuild.InputsDigest(root)
	if err != nil {
		t.Fatal(err)
	}
	if digest != b.InputsSHA256 {
		t.Errorf("homeserver/webui/static/hearth.wasm.br is older than the code it is built from: run `go generate ./homeserver/webui` and commit the result")
	}
	br, err := static.ReadFile("static/hearth.wasm.br")
	if err != nil {
		t.Fatal(err)
	}
	if len(br) != b.BrotliBytes || len(br) >= maxCompressed {
		t.Errorf("hearth.wasm.br is %d bytes (build.json: %d); the bound is %d", len(br), b.BrotliBytes, maxCompressed)
	}
	raw, err := io.ReadAll(brotli.NewReader(bytes.NewReader(br)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if len(raw) != b.WasmBytes || hex.EncodeToString(sum[:]) != b.WasmSHA256 {
		t.Errorf("hearth.wasm.br holds %d bytes with SHA-256 %x; build.json says %d, %s", len(raw), sum, b.WasmBytes, b.WasmSHA256)
	}
	if !bytes.HasPrefix(raw, []byte("\x00asm")) {
		t.Errorf("hearth.wasm.br does not hold WebAssembly")
	}
	t.Logf("hearth.wasm: %d bytes, %d brotli-compressed, built by %s", b.WasmBytes, b.BrotliBytes, b.GoVersion)
}

// TestWasmLeavesOutNativeTransports: the browser build links neither
// quic-go nor bbolt nor a Go HTTP or TLS stack (the browser has its own),
// which is what keeps it under the size bound, nor any server package but
// the protocol (deps_test.go's rules, which see only native builds).
func TestWasmLeavesOutNativeTransports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", wasmbuild.Package)
	cmd.Env = append(cmd.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	for _, banned := range []string{"github.com/quic-go/", "go.etcd.io/bbolt", "github.com/coder/websocket", "net/http", "crypto/tls", "github.com/mattn/go-sqlite3"} {
		for _, d := range deps {
			if strings.HasPrefix(d, banned) {
				t.Errorf("the web client links %s", d)
			}
		}
	}
	for _, d := range deps {
		server := strings.HasPrefix(d, "hearth/homeserver/") || d == "hearth/homeserver" || strings.HasPrefix(d, "hearth/storage") || strings.HasPrefix(d, "hearth/federation")
		if server && d != "hearth/homeserver/wire" {
			t.Errorf("the web client links server package %s", d)
		}
	}
	for _, want := range []string{"hearth/client", "hearth/client/store", "hearth/client/transport", "syscall/js"} {
		found := false
		for _, d := range deps {
			found = found || d == want
		}
		if !found {
			t.Errorf("the web client does not link %s", want)
		}
	}
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServePage: the page and its files come with the CSP, the right
// types and validators; the page has no inline script or style.
func TestServePage(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for path, ctype := range map[string]string{"/": "text/html", "/web/app.js": "text/javascript", "/web/worker.js": "text/javascript",
		"/web/wasm_exec.js": "text/javascript", "/web/style.css": "text/css"} {
		r := get(t, h, "GET", path, nil)
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q", path, r.StatusCode, r.Header.Get("Content-Type"))
		}
		if r.Header.Get("Content-Security-Policy") != CSP || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", path, r.Header)
		}
		etag := r.Header.Get("ETag")
		if etag == "" || r.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q", path, etag, r.Header.Get("Cache-Control"))
		}
		if r := get(t, h, "GET", path, map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified || len(body(t, r)) != 0 {
			t.Errorf("GET %s with its ETag: %d", path, r.StatusCode)
		}
	}
	for _, dir := range []string{"script-src 'self' 'wasm-unsafe-eval'", "default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(CSP, dir) {
			t.Errorf("CSP lacks %q", dir)
		}
	}
	if strings.Contains(CSP, "unsafe-inline") || strings.Contains(CSP, "'unsafe-eval'") {
		t.Errorf("CSP allows inline code or eval: %s", CSP)
	}
	page := string(body(t, get(t, h, "GET", "/", nil)))
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, `src="/web/`) {
			t.Errorf("inline script in the page: %s", tag)
		}
	}
	if regexp.MustCompile(`<style|\son[a-z]+=|style=`).MatchString(page) {
		t.Errorf("the page has inline style or event handlers")
	}
	for _, bad := range []struct{ method, path string }{{"GET", "/web/nothing.js"}, {"GET", "/web/build.json"}, {"GET", "/web/hearth.wasm.br"}, {"POST", "/"}} {
		if r := get(t, h, bad.method, bad.path, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", bad.method, bad.path, r.StatusCode)
		}
	}
}

// TestServeWasm: brotli to browsers that accept it, else gzip, else plain;
// always the same WebAssembly, with a validator per encoding.
func TestServeWasm(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := EmbeddedBuild()
	etags := map[string]bool{}
	for _, c := range []struct{ accept, enc string }{
		{"gzip, deflate, br, zstd", "br"}, {"gzip;q=1.0, br;q=0", "gzip"}, {"gzip", "gzip"}, {"", ""}, {"identity", ""},
	} {
		r := get(t, h, "GET", "/web/hearth.wasm", map[string]string{"Accept-Encoding": c.accept})
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/wasm" || r.Header.Get("Content-Encoding") != c.enc ||
			r.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("Accept-Encoding %q: %d, type %q, encoding %q", c.accept, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
		}
		var rd io.Reader = bytes.NewReader(body(t, r))
		switch c.enc {
		case "br":
			rd = brotli.NewReader(rd)
		case "gzip":
			if rd, err = gzip.NewReader(rd); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != b.WasmSHA256 {
			t.Errorf("Accept-Encoding %q: not the built WebAssembly", c.accept)
		}
		etags[c.enc+" "+r.Header.Get("ETag")] = true
	}
	if len(etags) != 3 {
		t.Errorf("ETags %v: want one per encoding", etags)
	}
}

func TestAccepts(t *testing.T) {
	for _, c := range []struct {
		header, coding string
		want           bool
	}{
		{"gzip, br", "br", true}, {"gzip,br;q=0.5", "br", true}, {"br;q=0", "br", false}, {"br; q=0", "br", false},
		{"gzip", "br", false}, {"", "gzip", false}, {"BR", "br", true}, {"xbr", "br", false},
	} {
		if got := accepts(c.header, c.coding); got != c.want {
			t.Errorf("accepts(%q, %q) = %v", c.header, c.coding, got)
		}
	}
}
