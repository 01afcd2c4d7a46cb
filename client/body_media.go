package client

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"hearth/client/store"
	"hearth/keys/identity"
	"hearth/keys/media"
)

// Limits on a received media reference, so that a hostile sender cannot
// make a receiver store or print junk.
const (
	maxMediaName = 255
	maxMediaType = 127
	maxMediaSize = 1 << 40
)

// encodeItemBody is the body of an outbox item: its text, and the media
// reference if it has one, with the sender's time (when the item was
// queued). A receipt or settings item has its body ready.
func encodeItemBody(it store.OutboxItem) ([]byte, error) {
	if it.Body != nil {
		return it.Body, nil
	}
	b := body{V: 1, Text: it.Text, Media: it.Media}
	if !it.Created.IsZero() {
		b.TS = it.Created.UnixMilli()
	}
	return marshalBody(b)
}

// checkMediaRef validates a media reference from a message body.
func checkMediaRef(r *store.MediaRef) error {
	if !media.ValidID(r.ID) {
		return fmt.Errorf("media: bad id")
	}
	if _, err := media.ParseKey(r.Key); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if !sha256Hex(r.SHA256) {
		return fmt.Errorf("media: sha256 must be 64 lowercase hex digits")
	}
	if r.PlainSHA256 != "" && !sha256Hex(r.PlainSHA256) {
		return fmt.Errorf("media: plain_sha256 must be 64 lowercase hex digits")
	}
	if r.Server != "" {
		if _, err := identity.ParseUser("x@" + r.Server); err != nil {
			return fmt.Errorf("media: bad server")
		}
	}
	return checkMediaMeta(r)
}

// sha256Hex reports whether s is a SHA-256 in lowercase hex.
func sha256Hex(s string) bool {
	h, err := hex.DecodeString(s)
	return err == nil && len(h) == 32 && s == strings.ToLower(s)
}

// checkMediaMeta validates what a reference says about the file itself.
func checkMediaMeta(r *store.MediaRef) error {
	if r.Size < 0 || r.Size > maxMediaSize {
		return fmt.Errorf("media: size %d out of range", r.Size)
	}
	if len(r.Type) > maxMediaType || !printable(r.Type) || strings.ContainsAny(r.Type, " \t") {
		return fmt.Errorf("media: bad type")
	}
	if r.Name == "" || len(r.Name) > maxMediaName || !printable(r.Name) || strings.ContainsAny(r.Name, `/\`) || r.Name == "." || r.Name == ".." {
		return fmt.Errorf("media: bad file name")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
