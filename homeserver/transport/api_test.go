package transport

import (
	"testing"

	"hearth/homeserver/wire"
)

// FuzzParseRefreshBody: any body is either one refresh token or a
// CODE_BAD_REQUEST, never a panic.
func FuzzParseRefreshBody(f *testing.F) {
	f.Add([]byte(`{"refresh_token":"abc"}`))
	f.Add([]byte(`{"refresh_token":""}`))
	f.Add([]byte(`{"refresh_token":"a","x":1}`))
	f.Add([]byte(`{"refresh_token":"a"}{"refresh_token":"b"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseRefreshBody(b)
		if err != nil {
			if !wire.Is(err, wire.Code_CODE_BAD_REQUEST) {
				t.Fatalf("error of kind %v", wire.KindOf(err))
			}
			return
		}
		if tok == "" {
			t.Fatal("accepted an empty token")
		}
	})
}

func TestParseRefreshBody(t *testing.T) {
	for _, tc := range []struct {
		body, tok string
	}{
		{`{"refresh_token":"abc"}`, "abc"},
		{` {"refresh_token":"abc"} `, "abc"},
		{`{"refresh_token":""}`, ""},
		{`{"refresh_token":"a","x":1}`, ""},
		{`{"refresh_token":"a"}{}`, ""},
		{`null`, ""},
		{``, ""},
	} {
		tok, err := parseRefreshBody([]byte(tc.body))
		if tok != tc.tok || (err == nil) != (tc.tok != "") {
			t.Errorf("%q: %q, %v; want %q", tc.body, tok, err, tc.tok)
		}
	}
}
