package main

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"path/filepath"
	"testing"

	"hearth/homeserver/wire"
)

// TestServeRESTMedia: a media uploaded on the control stream is served by
// the real server at GET /hearth/v1/media/ID to another user's access
// token, whole and by ranges; no token and unknown ids are refused.
func TestServeRESTMedia(t *testing.T) {
	skipShort(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustHearth(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0")
	s := startServe(t, dir, nil, "--dir", dir)
	mustHearth(t, "alice password\n", "admin", "--dir", dir, "user", "add", "alice", "--password-stdin")
	mustHearth(t, "bob password\n", "admin", "--dir", dir, "user", "add", "bob", "--password-stdin")
	ac, fr, f := s.session(t, "alice", "alice password", false)
	defer ac.Close()
	if f.GetLoginOk() == nil {
		t.Fatalf("login alice: %v", f)
	}
	alice := &requester{t: t, fw: wire.NewFrameWriter(ac, 0), fr: fr}
	bc, _, bf := s.session(t, "bob", "bob password", false)
	defer bc.Close()
	bob := bf.GetLoginOk()

	file := make([]byte, 200_000)
	rand.Read(file)
	up := alice.do(&wire.ClientFrame{Body: &wire.ClientFrame_UploadMedia{UploadMedia: &wire.UploadMedia{
		TotalSize: uint64(len(file)), Data: file, Final: true}}}).GetUploadMedia()
	if up.GetMediaId() == "" {
		t.Fatalf("upload: %v", up)
	}
	get := func(token, id, rng string) (int, []byte, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+s.addr+"/hearth/v1/media/"+id, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rsp, body := s.do(t, req)
		return rsp.StatusCode, body, rsp.Header.Get("Content-Range")
	}
	if code, body, _ := get(bob.GetAccessToken(), up.GetMediaId(), ""); code != 200 || !bytes.Equal(body, file) {
		t.Fatalf("whole media: %d, %d bytes", code, len(body))
	}
	if code, body, cr := get(bob.GetAccessToken(), up.GetMediaId(), "bytes=150000-"); code != 206 || !bytes.Equal(body, file[150_000:]) || cr != "bytes 150000-199999/200000" {
		t.Fatalf("range: %d %q, %d bytes", code, cr, len(body))
	}
	if code, _, _ := get("", up.GetMediaId(), ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _, _ := get(bob.GetAccessToken(), "AAAAAAAAAAAAAAAAAAAAAA", ""); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
}
