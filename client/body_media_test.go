package client

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"hearth/client/store"
	"hearth/keys/media"
)

func goodRef(t *testing.T) store.MediaRef {
	k, err := media.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return store.MediaRef{ID: "abcdefghijklmnopqrstuv", Key: k.Text(), SHA256: strings.Repeat("ab", 32), Size: 10,
		Type: "image/png", Name: "cat.png"}
}

func TestMediaBodyRoundTrip(t *testing.T) {
	ref := goodRef(t)
	b, err := encodeItemBody(store.OutboxItem{Text: "look", Media: &ref})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFull(b)
	if err != nil || got.Text != "look" || got.Media == nil || *got.Media != ref {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// A text-only reader (decodeBody) still gets the caption.
	if text, err := decodeBody(b); err != nil || text != "look" {
		t.Fatalf("decodeBody: %q, %v", text, err)
	}
	// Text bodies are unchanged: no media field.
	b, _ = encodeItemBody(store.OutboxItem{Text: "hi"})
	if strings.Contains(string(b), "media") {
		t.Fatalf("text body %s mentions media", b)
	}
}

func TestMediaBodyRefused(t *testing.T) {
	cases := map[string]func(*store.MediaRef){
		"short id":        func(r *store.MediaRef) { r.ID = "abc" },
		"id with slash":   func(r *store.MediaRef) { r.ID = "abcdefghijklmnop/../x" },
		"bad key":         func(r *store.MediaRef) { r.Key = "AAAA" },
		"zero key":        func(r *store.MediaRef) { r.Key = media.Key{}.Text() },
		"short sha":       func(r *store.MediaRef) { r.SHA256 = "abcd" },
		"upper-case sha":  func(r *store.MediaRef) { r.SHA256 = strings.Repeat("AB", 32) },
		"short plain sha": func(r *store.MediaRef) { r.PlainSHA256 = "abcd" },
		"upper plain sha": func(r *store.MediaRef) { r.PlainSHA256 = strings.Repeat("CD", 32) },
		"negative size":   func(r *store.MediaRef) { r.Size = -1 },
		"huge size":       func(r *store.MediaRef) { r.Size = 1 << 50 },
		"name with path":  func(r *store.MediaRef) { r.Name = "../etc/passwd" },
		"empty name":      func(r *store.MediaRef) { r.Name = "" },
		"dot-dot name":    func(r *store.MediaRef) { r.Name = ".." },
		"control in name": func(r *store.MediaRef) { r.Name = "a\x1b[2Jb" },
		"long name":       func(r *store.MediaRef) { r.Name = strings.Repeat("a", 256) },
		"type with space": func(r *store.MediaRef) { r.Type = "text/plain; x" },
		"C1 control":      func(r *store.MediaRef) { r.Type = "a/\u0085b" },
		"bad server":      func(r *store.MediaRef) { r.Server = "evil.example/../x" },
		"server with at":  func(r *store.MediaRef) { r.Server = "a@b.example" },
	}
	for name, mutate := range cases {
		ref := goodRef(t)
		mutate(&ref)
		b, _ := json.Marshal(body{V: 1, Media: &ref})
		if _, err := decodeFull(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeMediaBody(f *testing.F) {
	f.Add([]byte(`{"v":1,"text":"hi"}`))
	f.Add([]byte(`{"v":1,"media":{"id":"abcdefghijklmnopqrstuv","key":"` + strings.Repeat("A", 42) + `B","sha256":"` + strings.Repeat("ab", 32) + `","size":1,"type":"a/b","name":"n"}}`))
	f.Add([]byte(`{"v":1,"media":{"id":"abcdefghijklmnopqrstuv","key":"` + strings.Repeat("A", 42) + `B","sha256":"` + strings.Repeat("ab", 32) + `","plain_sha256":"` + strings.Repeat("cd", 32) + `","size":1,"type":"text/plain;charset=utf-8","name":"n.txt"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeFull(b)
		if err != nil || m.Media == nil {
			return
		}
		if err := checkMediaRef(m.Media); err != nil {
			t.Fatalf("decoded a reference that does not check: %v", err)
		}
	})
}

// TestCompactType: guessed and given MIME types are sent without spaces
// (receivers refuse a type with a space); a malformed one is refused.
func TestCompactType(t *testing.T) {
	for in, want := range map[string]string{
		"text/plain; charset=utf-8":      "text/plain;charset=utf-8",
		"text/html; charset=utf-8":       "text/html;charset=utf-8",
		"application/pdf":                "application/pdf",
		"Text/Plain; Charset=UTF-8; a=b": "text/plain;a=b;charset=UTF-8",
		"image/png":                      "image/png",
		"application/octet-stream":       "application/octet-stream",
	} {
		got, err := compactType(in)
		if err != nil || got != want {
			t.Errorf("compactType(%q) = %q, %v; want %q", in, got, err, want)
		}
		r := goodRef(t)
		r.Type = got
		if err := checkMediaMeta(&r); err != nil {
			t.Errorf("%q: compacted type refused by receivers: %v", got, err)
		}
	}
	for _, bad := range []string{"", "text", "a/b; x", `a/b; c="d e"`} {
		if got, err := compactType(bad); err == nil {
			t.Errorf("compactType(%q) = %q, want an error", bad, got)
		}
	}
}

// TestGuessType: common files get their type from the name alone, also
// where the system has no MIME table, and every guess is sendable.
func TestGuessType(t *testing.T) {
	for name, prefix := range map[string]string{
		"notes.txt": "text/plain", "page.html": "text/html", "README.md": "text/markdown", "a.CSV": "text/csv",
		"report.pdf": "application/pdf", "photo.JPG": "image/jpeg", "x.unknownext": "application/octet-stream",
	} {
		got, err := compactType(guessType(name))
		if err != nil || !strings.HasPrefix(got, prefix) {
			t.Errorf("%s: type %q, %v; want %s…", name, got, err, prefix)
		}
	}
}
