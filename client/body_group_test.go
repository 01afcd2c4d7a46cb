package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
)

func TestControlSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctl := control{Type: ctlMeta, Name: "n", Admins: []string{"a@x"}, Keys: map[string][]byte{"a@x/1": {1, 2}}}
	if err := ctl.sign("g@x", priv.Seed()); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(body{V: 1, Ctl: &ctl})
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := decodeMessage(b)
	if err != nil || got == nil || !got.verify("g@x", pub) {
		t.Fatalf("decoded control does not verify: %+v, %v", got, err)
	}
	if got.verify("h@x", pub) {
		t.Fatal("control verifies for another group")
	}
	got.Name = "m"
	if got.verify("g@x", pub) {
		t.Fatal("a changed control verifies")
	}
}

// FuzzDecodeControl: control messages come from other members; decoding
// never panics and nothing unsigned verifies.
func FuzzDecodeControl(f *testing.F) {
	f.Add([]byte(`{"v":1,"ctl":{"type":"meta","name":"x","admins":["a@x"]}}`))
	f.Add([]byte(`{"v":1,"ctl":{"type":"leave"}}`))
	f.Add([]byte(`{"v":1,"ctl":{"type":"meta","keys":{"a@x/1":"AAEC"},"sig":"AAAA"}}`))
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ctl, err := decodeMessage(b)
		if err != nil || ctl == nil {
			return
		}
		if ctl.verify("g@x", pub) {
			t.Fatal("a fuzzed control verified under a fresh key")
		}
	})
}
