package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every answer.
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; " +
	"style-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Build is what static/build.json says about the embedded WebAssembly.
type Build struct {
	GoVersion    string `json:"go_version"`
	InputsSHA256 string `json:"inputs_sha256"`
	WasmBytes    int    `json:"wasm_bytes"`
	WasmSHA256   string `json:"wasm_sha256"`
	BrotliBytes  int    `json:"brotli_bytes"`
}

// EmbeddedBuild reads static/build.json.
func EmbeddedBuild() (Build, error) {
	var b Build
	raw, err := static.ReadFile("static/build.json")
	if err != nil {
		return b, fmt.Errorf("webui: %w", err)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("webui: build.json: %w", err)
	}
	return b, nil
}

type asset struct {
	body  []byte // as stored: brotli-compressed for the WebAssembly
	ctype string
	etag  string
	br    bool
}

// Handler serves the page and its files.
type Handler struct {
	assets map[string]*asset // by URL path
	certs  *certPages

	once  sync.Once
	plain []byte // the WebAssembly decompressed, for browsers without br
	gz    []byte
	gzErr error
}

var _ http.Handler = (*Handler)(nil)

// wasmPath is where the page's worker fetches the client.
const wasmPath = "/web/hearth.wasm"

// New loads the embedded files; cfg says what the page tells about the
// server's certificates (certs.go).
func New(cfg Config) (*Handler, error) {
	cp, err := newCertPages(cfg)
	if err != nil {
		return nil, err
	}
	h := &Handler{assets: map[string]*asset{}, certs: cp}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		switch {
		case name == "hearth.wasm.br":
			a.ctype, a.br = "application/wasm", true
			h.assets[wasmPath] = a
			return nil
		case name == "build.json":
			return nil
		case name == "index.html":
			a.ctype = types[".html"]
			h.assets["/"] = a
			return nil
		}
		ct, ok := types[path.Ext(name)]
		if !ok {
			return fmt.Errorf("webui: no content type for %s", name)
		}
		a.ctype = ct
		h.assets["/web/"+name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	for _, p := range []string{"/", wasmPath, "/web/wasm_exec.js", "/web/worker.js", "/web/app.js"} {
		if h.assets[p] == nil {
			return nil, fmt.Errorf("webui: the embedded files lack %s (run go generate ./homeserver/webui)", p)
		}
	}
	return h, nil
}

// accepts reports whether the Accept-Encoding header value allows coding.
func accepts(header, coding string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), coding) {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// decoded fills h.plain and h.gz from the brotli-compressed WebAssembly.
func (h *Handler) decoded() error {
	h.once.Do(func() {
		raw, err := io.ReadAll(brotli.NewReader(bytes.NewReader(h.assets[wasmPath].body)))
		if err != nil {
			h.gzErr = fmt.Errorf("webui: decompress hearth.wasm: %w", err)
			return
		}
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		w.Write(raw)
		w.Close()
		h.plain, h.gz = raw, b.Bytes()
	})
	return h.gzErr
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	if h.certs.serve(w, r) {
		return
	}
	a := h.assets[r.URL.Path]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", "no-cache")
	body, etag := a.body, a.etag
	if a.br {
		hd.Set("Vary", "Accept-Encoding")
		ae := r.Header.Get("Accept-Encoding")
		switch {
		case accepts(ae, "br"):
			hd.Set("Content-Encoding", "br")
			etag = strings.TrimSuffix(etag, `"`) + `-br"`
		default:
			if err := h.decoded(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			body = h.plain
			if accepts(ae, "gzip") {
				hd.Set("Content-Encoding", "gzip")
				body, etag = h.gz, strings.TrimSuffix(etag, `"`)+`-gz"`
			}
		}
	}
	hd.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}
