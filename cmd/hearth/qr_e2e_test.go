package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestChatQRLink links a second device by its QR code, through the real
// binary: login --qr-png draws the code (half blocks on stderr, as stdout
// is not a terminal) and writes it as a PNG; both decode to the link text;
// `device approve FILE.png --yes` shows the new device's fingerprint (the
// one the new device printed) and links it.
func TestChatQRLink(t *testing.T) {
	skipShort(t)
	n := newChatNet(t, "alice", "bob")
	a1, a2 := newProfile(t, "alice"), newProfile(t, "alice")
	a1.must(t, password("alice"), a1.loginArgs(n)...)
	b1 := newProfile(t, "bob")
	b1.must(t, password("bob"), b1.loginArgs(n)...)

	pngPath := filepath.Join(t.TempDir(), "link.png")
	cmd := exec.Command(hearthBin, append([]string{"chat", "--profile", a2.dir}, a2.loginArgs(n, "--qr-png", pngPath, "--device-name", "alice's laptop")...)...)
	cmd.Stdin = strings.NewReader(password("alice"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var code string
	var out []string
	for code == "" && lines.Scan() {
		out = append(out, lines.Text())
		if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
			code = v
		}
	}
	if code == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("pending login printed no link-code: %q\n%s", out, stderr.String())
	}
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
			out = append(out, lines.Text())
		}
		done <- cmd.Wait()
	}()
	want := "hearth-link:alice@localhost:" + code
	if text, err := decodeQRPNG(pngPath); err != nil || text != want {
		t.Errorf("login's PNG decodes to %q, %v; want %q", text, err, want)
	}

	// Bob cannot approve alice's device with her QR code: refused before
	// anything is asked of the server.
	if r := b1.chat(t, "", "device", "approve", pngPath, "--yes"); r.code == 0 || !strings.Contains(r.stderr, "for a device of alice@localhost") {
		t.Errorf("bob approving alice's QR: exit %d, %q", r.code, r.stderr)
	}

	r := a1.chat(t, "", "device", "approve", pngPath, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "approved: ") {
		cmd.Process.Kill()
		t.Fatalf("approve by PNG: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pending login: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("pending login did not finish after approval:\n%s", stderr.String())
	}
	kv := keyValues(strings.Join(out, "\n"))
	if kv["status"] != "active" || kv["link-code"] != code {
		t.Fatalf("linked device output %q", out)
	}
	for _, line := range out {
		if strings.ContainsAny(line, "█▀▄") {
			t.Fatalf("QR code drawn on stdout, which scripts read: %q", out)
		}
	}
	if text := decodeHalfBlocks(t, stderr.String()); text != want {
		t.Errorf("the half blocks login drew decode to %q, want %q", text, want)
	}
	fp := regexp.MustCompile(`this device's fingerprint is ([A-Z2-7 ]+) `).FindStringSubmatch(stderr.String())
	if fp == nil {
		t.Fatalf("login printed no fingerprint:\n%s", stderr.String())
	}
	if !strings.Contains(r.stderr, "fingerprint: "+fp[1]+"\n") || !strings.Contains(r.stderr, `"alice's laptop"`) {
		t.Errorf("approve showed %q; want the new device's name and fingerprint %s", r.stderr, fp[1])
	}
	devs := devices(t, a2)
	if len(devs) != 2 || !devs[0].Listed || !devs[1].Listed {
		t.Errorf("devices after QR link: %+v", devs)
	}

	// The pasted QR text approves as well; --no-qr draws nothing.
	a3 := newProfile(t, "alice")
	cmd = exec.Command(hearthBin, append([]string{"chat", "--profile", a3.dir}, a3.loginArgs(n, "--no-qr")...)...)
	cmd.Stdin = strings.NewReader(password("alice"))
	var stderr3 bytes.Buffer
	cmd.Stderr = &stderr3
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines, code = bufio.NewScanner(stdout), ""
	for code == "" && lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), "link-code: "); ok {
			code = v
		}
	}
	go func() {
		for lines.Scan() {
		}
		done <- cmd.Wait()
	}()
	if r := a2.chat(t, "", "device", "approve", "hearth-link:alice@localhost:"+code); r.code != 0 || !strings.Contains(r.stdout, "approved: ") {
		cmd.Process.Kill()
		t.Fatalf("approve by pasted text (code %q): exit %d\n%s\n%s", code, r.code, r.stdout, r.stderr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("third login: %v\n%s", err, stderr3.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("third login did not finish:\n%s", stderr3.String())
	}
	if strings.ContainsAny(stderr3.String(), "█▀▄") {
		t.Errorf("--no-qr drew a QR code:\n%s", stderr3.String())
	}
}

// TestChatApproveAsksOnTerminal: on a terminal (a pty made by script(1)),
// `device approve` shows the device and asks; "n" approves nothing and
// the device stays pending, "y" links it.
func TestChatApproveAsksOnTerminal(t *testing.T) {
	skipShort(t)
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) (util-linux) is needed to run approve on a pty")
	}
	n := newChatNet(t, "alice")
	a1, a2 := newProfile(t, "alice"), newProfile(t, "alice")
	a1.must(t, password("alice"), a1.loginArgs(n)...)
	onPTY := func(answer, code string) (string, error) {
		shell := "'" + hearthBin + "' chat --profile '" + a1.dir + "' device approve " + code + " --no-history"
		cmd := exec.Command(scriptBin, "-qec", shell, "/dev/null")
		cmd.Stdin = strings.NewReader(answer)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	_, err = linkProfile(a2, 60*time.Second, func(code string) error {
		out, err := onPTY("n\n", code)
		if err == nil || !strings.Contains(out, "[y/N]") || !strings.Contains(out, "fingerprint: ") || !strings.Contains(out, "not approved (answered no)") {
			t.Errorf("answer n: %v\n%s", err, out)
		}
		for _, d := range devices(t, a1) {
			if !d.This && d.Status != "pending" {
				t.Errorf("after answer n: %+v", d)
			}
		}
		if out, err := onPTY("y\n", code); err != nil || !strings.Contains(out, "approved: ") {
			t.Errorf("answer y: %v\n%s", err, out)
		}
		return nil
	}, a2.loginArgs(n)...)
	if err != nil {
		t.Fatal(err)
	}
	if devs := devices(t, a2); len(devs) != 2 || !devs[0].Listed || !devs[1].Listed {
		t.Errorf("devices: %+v", devs)
	}
}
