package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"strings"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
	"golang.org/x/term"
)

// QR linking (issue #14): the pending device shows its link code as a QR
// code, the approving device reads it from a PNG, a pasted text or the
// typed code. The QR holds "hearth-link:USER:CODE" so that the approver
// can refuse a code of another user before it asks the server.

const linkQRPrefix = "hearth-link:"

// qrMargin is the light border, in modules, around a terminal QR code.
const qrMargin = 2

// linkQRText is the text a link QR code holds.
func linkQRText(user, code string) string { return linkQRPrefix + user + ":" + code }

// parseLinkQRText splits a QR text made by linkQRText.
func parseLinkQRText(s string) (user, code string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), linkQRPrefix)
	if !ok {
		return "", "", fmt.Errorf("not a hearth link code (want %sUSER:CODE)", linkQRPrefix)
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return "", "", fmt.Errorf("malformed hearth link text %q (want %sUSER:CODE)", s, linkQRPrefix)
	}
	user, code = rest[:i], rest[i+1:]
	if !strings.Contains(user, "@") {
		return "", "", fmt.Errorf("malformed hearth link text: %q is not USER@DOMAIN", user)
	}
	return user, code, nil
}

// qrBits encodes text as a QR code: true is a dark module, without border.
func qrBits(text string) ([][]bool, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	q.DisableBorder = true
	return q.Bitmap(), nil
}

// writeHalfBlocks draws bits two rows per line with UTF-8 half blocks,
// inside a margin of qrMargin light modules. Light modules are drawn
// (the glyph's foreground), dark ones are left blank, so that on a
// terminal with a dark background the code reads dark on light as
// scanners expect (as `qrencode -t UTF8` does).
func writeHalfBlocks(w io.Writer, bits [][]bool) error {
	n := len(bits)
	size := n + 2*qrMargin
	light := func(x, y int) bool {
		x, y = x-qrMargin, y-qrMargin
		if y < 0 || y >= n || x < 0 || x >= len(bits[y]) {
			return true
		}
		return !bits[y][x]
	}
	var b strings.Builder
	for y := 0; y < size; y += 2 {
		for x := 0; x < size; x++ {
			top, bottom := light(x, y), y+1 >= size || light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// qrImage draws bits as a grayscale image, scale pixels per module, with
// a light border of four modules (the QR standard's quiet zone).
func qrImage(bits [][]bool, scale int) *image.Gray {
	const border = 4
	n := len(bits)
	size := (n + 2*border) * scale
	img := image.NewGray(image.Rect(0, 0, size, size))
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			x, y := px/scale-border, py/scale-border
			c := color.Gray{Y: 255}
			if y >= 0 && y < n && x >= 0 && x < len(bits[y]) && bits[y][x] {
				c.Y = 0
			}
			img.SetGray(px, py, c)
		}
	}
	return img
}

// writeQRPNG writes text as a QR code PNG file (mode 0600: it holds a
// link code).
func writeQRPNG(path, text string) error {
	bits, err := qrBits(text)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write qr png: %w", err)
	}
	if err := png.Encode(f, qrImage(bits, 8)); err != nil {
		f.Close()
		return fmt.Errorf("write qr png %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write qr png: %w", err)
	}
	return nil
}

// decodeQRImage reads the text of the QR code in img.
func decodeQRImage(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
	if err != nil {
		return "", fmt.Errorf("no readable QR code found: %w", err)
	}
	return res.GetText(), nil
}

// maxQRPNG bounds the PNG file approve reads (a link QR fits in kilobytes).
const maxQRPNG = 16 << 20

// decodeQRPNG reads the text of the QR code in the PNG file at path.
func decodeQRPNG(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read qr png: %w", err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		return "", fmt.Errorf("read qr png %s: not a PNG image: %w", path, err)
	}
	if cfg.Width*cfg.Height > 4096*4096 {
		return "", fmt.Errorf("read qr png %s: image of %dx%d pixels is too large for a link QR code", path, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("read qr png: %w", err)
	}
	img, err := png.Decode(io.LimitReader(f, maxQRPNG))
	if err != nil {
		return "", fmt.Errorf("read qr png %s: %w", path, err)
	}
	text, err := decodeQRImage(img)
	if err != nil {
		return "", fmt.Errorf("read qr png %s: %w", path, err)
	}
	return text, nil
}

// linkCodeArg turns what `device approve` was given into a link code: the
// code itself, the QR's text ("hearth-link:USER:CODE", pasted) or the path
// of a PNG of the QR code. A QR of another user than self is refused.
func linkCodeArg(arg, self string) (string, error) {
	text := strings.TrimSpace(arg)
	if !strings.HasPrefix(text, linkQRPrefix) {
		fi, err := os.Stat(arg)
		switch {
		case err == nil && fi.Mode().IsRegular():
			if text, err = decodeQRPNG(arg); err != nil {
				return "", err
			}
		case err == nil:
			return "", fmt.Errorf("read qr png: %s is not a regular file", arg)
		case strings.HasSuffix(strings.ToLower(arg), ".png"):
			return "", fmt.Errorf("read qr png: %w", err)
		default:
			return text, nil // a typed code: identity.ParseLinkCode checks it
		}
	}
	user, code, err := parseLinkQRText(text)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(user, self) {
		return "", fmt.Errorf("this link code is for a device of %s, and this profile is %s: approve it from a device of %s", user, self, user)
	}
	return code, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f any) bool {
	o, ok := f.(*os.File)
	return ok && term.IsTerminal(int(o.Fd()))
}

// errNotApproved is the answer "no" at the approval prompt.
var errNotApproved = errors.New("not approved (answered no)")

// askYes writes question to w and reads a yes/no answer from r until ctx
// ends; anything but y or yes is no.
func askYes(ctx context.Context, r io.Reader, w io.Writer, question string) error {
	fmt.Fprint(w, question+" [y/N] ")
	ans := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		ans <- line
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(w)
		return fmt.Errorf("no answer: %w", ctx.Err())
	case a := <-ans:
		switch strings.ToLower(strings.TrimSpace(a)) {
		case "y", "yes":
			return nil
		}
		return errNotApproved
	}
}
