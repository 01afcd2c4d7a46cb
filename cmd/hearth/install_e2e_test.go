package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installScript is the repository's install.sh.
func installScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// toolDir is a folder holding links to the named programs only, to run
// install.sh on a PATH that lacks something.
func toolDir(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runInstall runs install.sh with env replacing the variables it names.
func runInstall(t *testing.T, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", installScript(t))
	keep := []string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PATH" || name == "PREFIX" || name == "BINDIR" || name == "CC" {
			continue
		}
		keep = append(keep, kv)
	}
	cmd.Env = append(keep, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestInstallScript: install.sh builds a working hearth into PREFIX/bin or
// BINDIR, prints the full path to run when that folder is not on PATH, and
// refuses with a clear message when the C compiler is missing or Go
// is too old.
func TestInstallScript(t *testing.T) {
	skipShort(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	basics := []string{"bash", "sed", "dirname", "mkdir", "mv"}

	prefix := filepath.Join(t.TempDir(), "prefix")
	out, code := runInstall(t, "PATH="+os.Getenv("PATH"), "PREFIX="+prefix)
	bin := filepath.Join(prefix, "bin", "hearth")
	if code != 0 || !strings.Contains(out, "installed "+bin) {
		t.Fatalf("install.sh: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "not on your PATH") || !strings.Contains(out, "    "+bin+" serve\n") {
		t.Errorf("install.sh did not say %s is not on PATH and what to run:\n%s", filepath.Dir(bin), out)
	}
	// BINDIR names the folder itself and wins over PREFIX.
	bindir := filepath.Join(t.TempDir(), "mybin")
	out, code = runInstall(t, "PATH="+os.Getenv("PATH"), "PREFIX="+filepath.Join(t.TempDir(), "unused"), "BINDIR="+bindir)
	if code != 0 || !strings.Contains(out, "installed "+filepath.Join(bindir, "hearth")) || !strings.Contains(out, "    "+filepath.Join(bindir, "hearth")+" serve\n") {
		t.Fatalf("BINDIR=%s install.sh: exit %d\n%s", bindir, code, out)
	}
	if _, err := os.Stat(filepath.Join(bindir, "hearth")); err != nil {
		t.Fatal(err)
	}
	// A folder on PATH needs no note.
	out, code = runInstall(t, "PATH="+bindir+":"+os.Getenv("PATH"), "BINDIR="+bindir)
	if code != 0 || strings.Contains(out, "not on your PATH") {
		t.Errorf("install.sh into a folder on PATH: exit %d\n%s", code, out)
	}
	help, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "Run the homeserver") {
		t.Fatalf("installed hearth --help: %v\n%s", err, help)
	}

	// No C compiler: only Go and the shell's basics on PATH.
	noCC := toolDir(t, basics...)
	os.Symlink(goBin, filepath.Join(noCC, "go"))
	out, code = runInstall(t, "PATH="+noCC, "PREFIX="+filepath.Join(t.TempDir(), "p2"))
	if code == 0 || !strings.Contains(out, "no C compiler found") || !strings.Contains(out, "apt-get install -y gcc") {
		t.Errorf("install.sh without a C compiler: exit %d\n%s", code, out)
	}

	// A Go that is too old.
	old := toolDir(t, basics...)
	fake := "#!/bin/sh\nif [ \"$1 $2\" = \"env GOVERSION\" ]; then echo go1.21.0; exit 0; fi\nexit 3\n"
	if err := os.WriteFile(filepath.Join(old, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code = runInstall(t, "PATH="+old, "PREFIX="+filepath.Join(t.TempDir(), "p3"))
	if code == 0 || !strings.Contains(out, "found go1.21.0") || !strings.Contains(out, "needs go 1.26") {
		t.Errorf("install.sh with go1.21: exit %d\n%s", code, out)
	}
}
