package transport

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"hearth/homeserver/wire"
)

// mediaBytes is the one media memMedia holds, as id "m1", for token "good".
var mediaBytes = bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

type memMedia struct{}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (memMedia) OpenMedia(ctx context.Context, token, id string) (io.ReadSeekCloser, error) {
	switch {
	case token != "good":
		return nil, wire.Errorf("test", wire.Code_CODE_UNAUTHENTICATED, "bad token")
	case id != "m1":
		return nil, wire.Errorf("test", wire.Code_CODE_NOT_FOUND, "no such media")
	}
	return nopCloser{bytes.NewReader(mediaBytes)}, nil
}

// TestRESTMedia: GET /hearth/v1/media/ID with a bearer token serves the
// ciphertext whole or by ranges, over HTTPS and HTTP/3; no token, a bad
// token and an unknown id are refused with the wire codes.
func TestRESTMedia(t *testing.T) {
	ts := startServer(t, Config{}, echoStreams{})
	base := "https://" + ts.addr
	get := func(c *http.Client, path, token, rng string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rsp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		b, err := io.ReadAll(rsp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return rsp, b
	}
	for _, c := range []*http.Client{ts.httpClient(), ts.h3Client(t)} {
		if rsp, b := get(c, PathMedia+"m1", "good", ""); rsp.StatusCode != 200 || !bytes.Equal(b, mediaBytes) {
			t.Fatalf("whole media: %d, %d bytes", rsp.StatusCode, len(b))
		}
		rsp, b := get(c, PathMedia+"m1", "good", "bytes=1000-1999")
		if rsp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, mediaBytes[1000:2000]) ||
			rsp.Header.Get("Content-Range") != "bytes 1000-1999/65536" {
			t.Fatalf("range: %d %q, %d bytes", rsp.StatusCode, rsp.Header.Get("Content-Range"), len(b))
		}
		for _, tc := range []struct {
			name, path, token string
			status            int
		}{
			{"no token", PathMedia + "m1", "", 401},
			{"bad token", PathMedia + "m1", "bad", 401},
			{"unknown id", PathMedia + "m2", "good", 404},
			{"no id", PathMedia, "good", 404},
		} {
			if rsp, b := get(c, tc.path, tc.token, ""); rsp.StatusCode != tc.status || bytes.Contains(b, mediaBytes[:64]) {
				t.Errorf("%s: %d", tc.name, rsp.StatusCode)
			}
		}
	}
}
