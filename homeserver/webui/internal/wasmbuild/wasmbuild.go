// Package wasmbuild builds the web client's WebAssembly (hearth/client/webclient
// for GOOS=js GOARCH=wasm) and computes the digest of its inputs, which
// homeserver/webui's build.json records so that a test can tell when the
// committed build is stale (docs/decisions/0011-web-client-build.md).
package wasmbuild

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Package is the web client's main package.
const Package = "hearth/client/webclient"

func goEnv() []string {
	return append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
}

// ModuleRoot is the folder of the hearth module (go.mod), found by the go
// command from the working directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: find the module: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

type listed struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Replace *struct{ Path, Version string }
	}
}

// InputsDigest is the SHA-256 over what the WebAssembly is built from: the
// module's own Go files (and embedded files) of every package it links, by
// path and content, and the path and version of every other module it
// links. The Go version is not part of it (build.json records it).
func InputsDigest(root string) (string, error) {
	cmd := exec.Command("go", "list", "-deps", "-json", Package)
	cmd.Dir, cmd.Env = root, goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("wasmbuild: go list: %w: %s", err, stderr.String())
	}
	var lines []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("wasmbuild: go list output: %w", err)
		}
		switch {
		case p.Standard:
		case p.Module == nil:
			return "", fmt.Errorf("wasmbuild: package %s has no module", p.ImportPath)
		case p.Module.Path == "hearth":
			files := append(append([]string{}, p.GoFiles...), p.EmbedFiles...)
			for _, f := range files {
				raw, err := os.ReadFile(filepath.Join(p.Dir, f))
				if err != nil {
					return "", fmt.Errorf("wasmbuild: %w", err)
				}
				rel, err := filepath.Rel(root, filepath.Join(p.Dir, f))
				if err != nil {
					return "", fmt.Errorf("wasmbuild: %w", err)
				}
				sum := sha256.Sum256(raw)
				lines = append(lines, filepath.ToSlash(rel)+" "+hex.EncodeToString(sum[:]))
			}
		default:
			m := p.Module.Path + "@" + p.Module.Version
			if r := p.Module.Replace; r != nil {
				m += "=>" + r.Path + "@" + r.Version
			}
			lines = append(lines, "module "+m)
		}
	}
	sort.Strings(lines)
	lines = dedup(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:]), nil
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Build compiles the web client to WebAssembly (stripped, -trimpath) and
// returns it.
func Build(root string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "hearth-wasm-")
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "hearth.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, Package)
	cmd.Dir, cmd.Env = root, goEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("wasmbuild: go build: %w: %s", err, b)
	}
	return os.ReadFile(out)
}

// WasmExec is the go command's wasm_exec.js, the JavaScript half of the
// WebAssembly runtime; it must come from the Go version that built the
// WebAssembly.
func WasmExec() ([]byte, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: go env GOROOT: %w", err)
	}
	root := strings.TrimSpace(string(out))
	for _, p := range []string{"lib/wasm/wasm_exec.js", "misc/wasm/wasm_exec.js"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("wasmbuild: no wasm_exec.js under %s", root)
}
