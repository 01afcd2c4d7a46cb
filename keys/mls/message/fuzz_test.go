package message

import (
	"bytes"
	"testing"

	"hearth/keys/mls/suite"
)

// seedMessages adds every value of the named messages.json fields to f.
func seedMessages(f *testing.F, fields ...string) {
	var vs []messagesVector
	loadVectors(f, "messages.json", &vs)
	for i, v := range vs {
		if i%10 != 0 { // a spread of cases keeps the corpus small
			continue
		}
		for _, name := range fields {
			f.Add([]byte(v[name]))
		}
	}
}

// fuzzRoundTrip checks that anything decode accepts re-encodes exactly.
func fuzzRoundTrip[T any, PT interface {
	*T
	Unmarshal([]byte) error
	Marshal() []byte
}](t *testing.T, b []byte) PT {
	v := PT(new(T))
	if err := v.Unmarshal(b); err != nil {
		return nil
	}
	if got := v.Marshal(); !bytes.Equal(got, b) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", b, got)
	}
	return v
}

func FuzzMLSMessage(f *testing.F) {
	seedMessages(f, "mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
		"public_message_proposal", "public_message_commit", "private_message")
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip[MLSMessage](t, b) })
}

func FuzzKeyPackage(f *testing.F) {
	seedMessages(f, "add_proposal") // an Add is exactly a KeyPackage
	s, _ := suite.Lookup(suite.Mandatory)
	f.Fuzz(func(t *testing.T, b []byte) {
		if kp := fuzzRoundTrip[KeyPackage](t, b); kp != nil {
			_ = kp.Verify(s) // must not panic on hostile keys
		}
	})
}

func FuzzWelcome(f *testing.F) {
	var vs []messagesVector
	loadVectors(f, "messages.json", &vs)
	for _, v := range vs[:20] {
		f.Add([]byte(v["mls_welcome"][4:])) // strip the MLSMessage header
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip[Welcome](t, b) })
}

func FuzzGroupInfo(f *testing.F) {
	var vs []messagesVector
	loadVectors(f, "messages.json", &vs)
	for _, v := range vs[:20] {
		f.Add([]byte(v["mls_group_info"][4:]))
	}
	s, _ := suite.Lookup(suite.Mandatory)
	f.Fuzz(func(t *testing.T, b []byte) {
		if gi := fuzzRoundTrip[GroupInfo](t, b); gi != nil {
			_ = gi.Verify(s, SignaturePublicKey(b[:min(len(b), 32)]))
			_, _, _ = gi.Extensions.ExternalPub()
			_, _, _ = gi.Extensions.RatchetTree()
		}
	})
}
