// Command gen builds the web client's files that homeserver/webui embeds:
// static/hearth.wasm.br (the WebAssembly, brotli-compressed),
// static/wasm_exec.js (from the Go toolchain that built it) and
// static/build.json (sizes, hashes and the digest of the inputs that
// TestBuildUpToDate compares). Run by `go generate ./homeserver/webui`.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/andybalholm/brotli"

	"hearth/homeserver/webui/internal/wasmbuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		return err
	}
	static := filepath.Join(root, "homeserver", "webui", "static")
	digest, err := wasmbuild.InputsDigest(root)
	if err != nil {
		return err
	}
	wasm, err := wasmbuild.Build(root)
	if err != nil {
		return err
	}
	exec, err := wasmbuild.WasmExec()
	if err != nil {
		return err
	}
	var br bytes.Buffer
	w := brotli.NewWriterLevel(&br, brotli.BestCompression)
	if _, err := w.Write(wasm); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	sum := sha256.Sum256(wasm)
	info, err := json.MarshalIndent(map[string]any{
		"go_version":    runtime.Version(),
		"inputs_sha256": digest,
		"wasm_bytes":    len(wasm),
		"wasm_sha256":   hex.EncodeToString(sum[:]),
		"brotli_bytes":  br.Len(),
	}, "", "  ")
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"hearth.wasm.br": br.Bytes(), "wasm_exec.js": exec, "build.json": append(info, '\n')} {
		if err := os.WriteFile(filepath.Join(static, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("gen: hearth.wasm %d bytes, %d brotli-compressed (%s)\n", len(wasm), br.Len(), runtime.Version())
	return nil
}
