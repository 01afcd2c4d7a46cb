//go:build !js

package store

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoreSuiteOnBrowserStore runs this package's tests again with
// GOOS=js GOARCH=wasm in Node.js, where Store is the browser's store
// (memkv.go's record tree persisted by IndexedDB; in Node.js by a Go
// fake of IndexedDB, store_js_test.go): the same record tests pass on the
// bbolt store (this run) and on the browser's. Tests of bbolt's file or of
// several processes on one profile are left out there (build tags,
// sharedProfiles). Needs Node.js (.ci/run installs it); skipped without.
func TestStoreSuiteOnBrowserStore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser store's run of the suite builds a WebAssembly test binary")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("Node.js is not installed (apt-get install nodejs): the store tests cannot run on the browser's store")
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	execWasm := filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "go_js_wasm_exec")
	if _, err := os.Stat(execWasm); err != nil {
		t.Fatalf("the Go toolchain has no %s: %v", execWasm, err)
	}
	cmd := exec.Command("go", "test", "-exec", execWasm, "-timeout", "3m", ".")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("GOOS=js go test: %v\n%s", err, out)
	}
	t.Logf("GOOS=js GOARCH=wasm: %s (%v)", strings.TrimSpace(string(out)), time.Since(start).Round(time.Millisecond))
}
