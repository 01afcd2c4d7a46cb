package main

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseHalfBlocks reads back the half-block drawing writeHalfBlocks makes
// from the lines of out that consist only of block glyphs and spaces:
// true is a dark module (a blank half), margins included.
func parseHalfBlocks(t *testing.T, out string) [][]bool {
	t.Helper()
	var rows [][]bool
	width := -1
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.Trim(line, "█▀▄ ") != "" || !strings.ContainsAny(line, "█▀▄") {
			continue
		}
		rs := []rune(line)
		if width >= 0 && len(rs) != width {
			t.Fatalf("half-block lines of %d and %d characters", width, len(rs))
		}
		width = len(rs)
		top, bottom := make([]bool, width), make([]bool, width)
		for x, r := range rs {
			top[x] = r == ' ' || r == '▄'    // dark top half
			bottom[x] = r == ' ' || r == '▀' // dark bottom half
		}
		rows = append(rows, top, bottom)
	}
	if len(rows) == 0 {
		t.Fatalf("no half-block QR code in %q", out)
	}
	return rows
}

// decodeHalfBlocks decodes the QR code drawn in out with gozxing.
func decodeHalfBlocks(t *testing.T, out string) string {
	t.Helper()
	text, err := decodeQRImage(qrImage(parseHalfBlocks(t, out), 6))
	if err != nil {
		t.Fatalf("decode the half-block QR code: %v\n%s", err, out)
	}
	return text
}

// TestLinkQRHalfBlocks: the terminal drawing of a link code, parsed back
// to modules, is the encoder's matrix inside its margin and decodes to
// the link text.
func TestLinkQRHalfBlocks(t *testing.T) {
	for _, code := range []string{"K7QW2M-ABCDEFGH", "ZZZZ-22222222", strings.Repeat("A", 32) + "-ABCDEFGH"} {
		text := linkQRText("alice@a.example", code)
		bits, err := qrBits(text)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := writeHalfBlocks(&out, bits); err != nil {
			t.Fatal(err)
		}
		got := parseHalfBlocks(t, out.String())
		n := len(bits) + 2*qrMargin
		if len(got) != n+n%2 || len(got[0]) != n {
			t.Fatalf("drawn %dx%d, want %dx%d", len(got[0]), len(got), n, n)
		}
		for y := range got {
			for x := range got[y] {
				want := false // margin: light
				if by, bx := y-qrMargin, x-qrMargin; by >= 0 && by < len(bits) && bx >= 0 && bx < len(bits) {
					want = bits[by][bx]
				}
				if got[y][x] != want {
					t.Fatalf("module (%d,%d) dark=%v, want %v", x, y, got[y][x], want)
				}
			}
		}
		if dec := decodeHalfBlocks(t, out.String()); dec != text {
			t.Errorf("decoded %q, want %q", dec, text)
		}
	}
}

// TestLinkCodeArg: approve takes the code, the pasted QR text or a PNG of
// the QR code, and refuses another user's code, a missing file and an
// image without a QR code with a clear error.
func TestLinkCodeArg(t *testing.T) {
	dir := t.TempDir()
	const self, code = "alice@a.example", "K7QW2M-ABCDEFGH"
	qr := filepath.Join(dir, "link.png")
	if err := writeQRPNG(qr, linkQRText(self, code)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(qr); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("qr png: %v, %v", fi, err)
	}
	other := filepath.Join(dir, "bob.png")
	if err := writeQRPNG(other, linkQRText("bob@a.example", code)); err != nil {
		t.Fatal(err)
	}
	blank := filepath.Join(dir, "blank.png")
	f, _ := os.Create(blank)
	png.Encode(f, qrImage([][]bool{{false}}, 10))
	f.Close()
	notPNG := filepath.Join(dir, "notes.txt")
	os.WriteFile(notPNG, []byte("hello"), 0o600)

	for _, tc := range []struct{ arg, want, err string }{
		{code, code, ""},
		{"k7qw2m-abcdefgh", "k7qw2m-abcdefgh", ""},
		{linkQRText(self, code), code, ""},
		{"  " + linkQRText("Alice@A.example", code) + "\n", code, ""},
		{qr, code, ""},
		{linkQRText("bob@a.example", code), "", "is for a device of bob@a.example"},
		{other, "", "is for a device of bob@a.example"},
		{"hearth-link:" + code, "", "malformed hearth link text"},
		{"hearth-link:alice:" + code, "", "is not USER@DOMAIN"},
		{filepath.Join(dir, "missing.png"), "", "no such file"},
		{blank, "", "no readable QR code"},
		{notPNG, "", "not a PNG image"},
		{dir, "", "is not a regular file"},
	} {
		got, err := linkCodeArg(tc.arg, self)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("linkCodeArg(%q) = %q, %v; want error with %q", tc.arg, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("linkCodeArg(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}

// TestAskYes: only y or yes approves; no answer before ctx ends is an error.
func TestAskYes(t *testing.T) {
	for in, ok := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "": false, "yep\n": false} {
		var w bytes.Buffer
		err := askYes(context.Background(), strings.NewReader(in), &w, "Approve?")
		if (err == nil) != ok || (!ok && !errors.Is(err, errNotApproved)) || !strings.Contains(w.String(), "Approve? [y/N]") {
			t.Errorf("answer %q: %v (prompt %q)", in, err, w.String())
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := askYes(ctx, r, &bytes.Buffer{}, "Approve?"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no answer: %v", err)
	}
}

// FuzzParseLinkQRText: any pasted or scanned text is parsed or refused
// without panic, and what parses is made again by linkQRText.
func FuzzParseLinkQRText(f *testing.F) {
	f.Add("hearth-link:alice@a.example:K7QW2M-ABCDEFGH")
	f.Add("hearth-link::")
	f.Add("hearth-link:a@b:c:d")
	f.Add("K7QW2M-ABCDEFGH")
	f.Fuzz(func(t *testing.T, s string) {
		user, code, err := parseLinkQRText(s)
		if err != nil {
			return
		}
		if user == "" || code == "" || strings.Contains(code, ":") {
			t.Fatalf("parsed %q to user %q code %q", s, user, code)
		}
		if u2, c2, err := parseLinkQRText(linkQRText(user, code)); err != nil || u2 != user || c2 != code {
			t.Fatalf("round trip of %q: %q %q %v", s, u2, c2, err)
		}
	})
}
