package mls

import (
	"bytes"
	"testing"

	"hearth/keys/mls/message"
	"hearth/keys/mls/suite"
)

func TestInspect(t *testing.T) {
	s, _ := suite.Lookup(1)
	alice, bob := newDevice(t, s, "alice@a/1"), newDevice(t, s, "bob@b/1")
	var err error
	if alice.g, err = NewGroup(testConfig(), s, []byte("hub"), alice.signer, message.BasicCredential(alice.id), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	kp, _ := bob.keyPackage(t, s)
	out, err := alice.g.Commit(CommitOptions{Add: []*message.KeyPackage{kp}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := message.Inspect(out.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if e.ContentType != message.ContentCommit || e.Epoch != 0 || !bytes.Equal(e.GroupID, []byte("hub")) ||
		len(e.Added) != 1 || string(e.Added[0]) != bob.id || e.Sender.Index != 0 {
		t.Fatalf("envelope %+v", e)
	}
	sum, err := InspectGroupInfo(out.GroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Epoch != 1 || len(sum.Members) != 2 || !sum.External {
		t.Fatalf("summary %+v", sum)
	}
	bad := bytes.Clone(out.GroupInfo)
	bad[len(bad)-3] ^= 1
	if _, err := InspectGroupInfo(bad); err == nil {
		t.Fatal("tampered GroupInfo accepted")
	}
	if _, err := alice.g.ApplyPendingCommit(); err != nil {
		t.Fatal(err)
	}
	ct, _ := alice.g.Encrypt([]byte("x"), nil)
	if e, err := message.Inspect(ct); err != nil || e.WireFormat != message.WirePrivateMessage || e.Epoch != 1 || e.Sender != nil {
		t.Fatalf("private envelope %+v %v", e, err)
	}
	for _, c := range []struct {
		msg  []byte
		want WireFormat
	}{{out.Commit, WirePublicMessage}, {ct, WirePrivateMessage}, {out.GroupInfo, WireGroupInfo}, {out.Welcome, WireWelcome}} {
		if wf, ok := PeekWireFormat(c.msg); !ok || wf != c.want {
			t.Errorf("PeekWireFormat = %d, %v; want %d", wf, ok, c.want)
		}
	}
	for _, b := range [][]byte{nil, {0, 1, 0}, {0, 2, 0, 1}} {
		if wf, ok := PeekWireFormat(b); ok {
			t.Errorf("PeekWireFormat(%x) = %d, true", b, wf)
		}
	}
}

func FuzzInspect(f *testing.F) {
	_, seeds := fuzzGroup(f)
	for _, m := range seeds {
		f.Add(m)
	}
	f.Add([]byte{0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := message.Inspect(b); err == nil {
			if wf, ok := PeekWireFormat(b); !ok || wf != e.WireFormat {
				t.Fatalf("PeekWireFormat = %d, %v; Inspect read %d", wf, ok, e.WireFormat)
			}
		}
		InspectGroupInfo(b)
	})
}
