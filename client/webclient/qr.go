//go:build js && wasm

package main

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// linkQRText is what a link QR code holds, as `hearth chat login` draws it
// and `hearth chat device approve` reads it: hearth-link:USER:CODE.
func linkQRText(user, code string) string { return "hearth-link:" + user + ":" + code }

// qrMargin is the light border, in modules, that scanners need.
const qrMargin = 4

// qrSVG draws text as a QR code in SVG: one path of dark unit squares on a
// white square, scaled by the page.
func qrSVG(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	q.DisableBorder = true
	bits := q.Bitmap()
	size := len(bits) + 2*qrMargin
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, size, size)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, size, size)
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+qrMargin, y+qrMargin)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
