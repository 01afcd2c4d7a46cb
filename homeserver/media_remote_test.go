package homeserver

import (
	"bytes"
	"testing"

	"hearth/homeserver/wire"
)

func downloadFrom(server, id string, off, n uint64) *wire.ClientFrame {
	return &wire.ClientFrame{Body: &wire.ClientFrame_DownloadMedia{DownloadMedia: &wire.DownloadMedia{
		MediaId: id, Offset: off, Length: n, Server: server}}}
}

// TestMediaAcrossServers: bob on b.example reads, through his own server,
// a media alice uploaded to a.example, in ranges, byte for byte; an
// unknown id and a malformed server are refused.
func TestMediaAcrossServers(t *testing.T) {
	a, b := newFedNode(t, "a.example"), newFedNode(t, "b.example")
	pinAll(t, a, b)
	_, alice := a.addUser("alice")
	_, bob := b.addUser("bob")
	file := randBytes(500_000)
	id := alice.must(upload("", uint64(len(file)), 0, file[:200_000], false)).GetUploadMedia().GetUploadId()
	alice.must(upload(id, 0, 200_000, file[200_000:400_000], false))
	done := alice.must(upload(id, 0, 400_000, file[400_000:], true)).GetUploadMedia()
	if done.GetMediaId() == "" {
		t.Fatalf("upload: %v", done)
	}
	var got []byte
	for {
		d := bob.must(downloadFrom("a.example", done.GetMediaId(), uint64(len(got)), 150_000)).GetMediaData()
		if d.GetTotalSize() != uint64(len(file)) {
			t.Fatalf("total %d, want %d", d.GetTotalSize(), len(file))
		}
		if len(d.GetData()) == 0 {
			break
		}
		got = append(got, d.GetData()...)
	}
	if !bytes.Equal(got, file) {
		t.Fatalf("bob read %d bytes, not alice's file", len(got))
	}
	bob.fails(downloadFrom("a.example", "AAAAAAAAAAAAAAAAAAAAAA", 0, 10), wire.Code_CODE_NOT_FOUND)
	bob.fails(downloadFrom("not a domain!", done.GetMediaId(), 0, 10), wire.Code_CODE_BAD_REQUEST)
	// Naming its own server (or none) reads locally: b.example has no such media.
	bob.fails(downloadFrom("b.example", done.GetMediaId(), 0, 10), wire.Code_CODE_NOT_FOUND)
}
